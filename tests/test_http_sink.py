"""The http sink against a real local HTTP server (the standard library's, in a thread)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from listend.daemon.config.loader import parse_config
from listend.daemon.delivery.worker import SinkWorker, dead_letter_path
from listend.daemon.errors import ConfigError
from listend.daemon.plugin.manager import load_plugins
from listend.daemon.plugin.source import PluginContext
from listend.daemon.retry.backoff import Backoff
from listend.plugins.http_sink import HttpSink, HttpSinkConfig, retry_after_seconds
from tests.support.events import transcript
from tests.support.net import free_port
from tests.support.waiting import async_test, wait_until_async

SECRET = "s3cret-shared"


def make_worker(tmp_path, **options) -> SinkWorker:
    config = HttpSinkConfig.model_validate({"type": "http", **options})
    sink = HttpSink("hook", config, PluginContext("dev", tmp_path))
    return SinkWorker(sink, Backoff(initial=0.01, cap=0.05))


def verify(secret: str, headers: dict[str, str], body: bytes, max_age: float = 300) -> bool:
    """The receiver-side check documented in docs/sinks.md."""
    timestamp = headers["X-Listend-Timestamp"]
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    fresh = abs(time.time() - int(timestamp)) <= max_age
    return fresh and hmac.compare_digest(headers["X-Listend-Signature"], f"v1={expected}")


@async_test
async def test_500s_then_200_delivers_once_acknowledged_and_signed(tmp_path, receiver, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    receiver.script = [(500, {}), (503, {}), (502, {})]
    worker = make_worker(tmp_path, url=receiver.url, signing_secret="$env:HOOK_SECRET")
    task = asyncio.create_task(worker.run())
    event = transcript("hall", 0, "hello webhook")
    await worker.put(event)
    await wait_until_async(lambda: worker.delivered == 1)
    worker.close()
    await task
    assert [r.status for r in receiver.requests] == [500, 503, 502, 200]
    headers, body = receiver.requests[-1].headers, receiver.requests[-1].body
    assert json.loads(body)["id"] == event.id
    assert headers["X-Listend-Event-Id"] == event.id
    assert headers["Content-Type"] == "application/json"
    assert verify(SECRET, headers, body)
    assert not verify("wrong secret", headers, body)
    assert not verify(SECRET, headers, body + b" ")
    assert worker.failed == 3
    assert len(worker.outbox) == 0


@async_test
async def test_400_goes_to_the_dead_letter_file_and_the_rest_continues(tmp_path, receiver):
    receiver.script = [(400, {})]
    worker = make_worker(tmp_path, url=receiver.url)
    task = asyncio.create_task(worker.run())
    await worker.put(transcript("hall", 0, "refused"))
    await worker.put(transcript("hall", 1, "accepted"))
    await wait_until_async(lambda: worker.delivered == 1)
    worker.close()
    await task
    assert [r.status for r in receiver.requests] == [400, 200]
    [line] = dead_letter_path(tmp_path, "hook").read_text().splitlines()
    record = json.loads(line)
    assert record["event"]["text"] == "refused"
    assert "HTTP 400" in record["error"]
    assert '"error": "nope"' in record["error"]  # the receiver's explanation is kept


@async_test
async def test_429_waits_for_retry_after(tmp_path, receiver):
    receiver.script = [(429, {"Retry-After": "1"})]
    worker = make_worker(tmp_path, url=receiver.url)
    task = asyncio.create_task(worker.run())
    started = time.monotonic()
    await worker.put(transcript("hall", 0, "x"))
    await wait_until_async(lambda: worker.delivered == 1)
    waited = time.monotonic() - started
    worker.close()
    await task
    assert waited >= 1.0  # a lower bound only: never assert an upper bound on shared CPUs


def test_retry_after_forms():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30)), now) == 30.0
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=30)), now) == 0.0
    assert retry_after_seconds("999999") == 3600.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


@async_test
async def test_network_errors_are_retried_until_the_server_is_up(tmp_path):
    port = free_port()
    worker = make_worker(tmp_path, url=f"http://127.0.0.1:{port}/hook", timeout=1)
    task = asyncio.create_task(worker.run())
    await worker.put(transcript("hall", 0, "x"))
    await wait_until_async(lambda: worker.failed >= 2)
    assert not worker.sink.reachable()
    assert len(worker.outbox) == 1
    worker.close(timeout=0)
    await task


@async_test
async def test_batches_auth_and_headers(tmp_path, receiver, monkeypatch):
    monkeypatch.setenv("HOOK_PASSWORD", "pw")
    worker = make_worker(
        tmp_path,
        url=receiver.url,
        batch=10,
        headers={"X-Tenant": "t1"},
        basic_auth={"username": "listend", "password": "$env:HOOK_PASSWORD"},
    )
    for seq in range(4):
        await worker.put(transcript("hall", seq, f"t{seq}"))  # queued before the sink runs
    task = asyncio.create_task(worker.run())
    await wait_until_async(lambda: worker.delivered == 4)
    worker.close()
    await task
    [request] = receiver.requests
    headers, body = request.headers, request.body
    assert [e["seq"] for e in json.loads(body)] == [0, 1, 2, 3]
    assert headers["X-Tenant"] == "t1"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"listend:pw").decode()
    assert "X-Listend-Signature" not in headers


@async_test
async def test_bearer_token(tmp_path, receiver, monkeypatch):
    monkeypatch.setenv("HOOK_TOKEN", "tok")
    worker = make_worker(tmp_path, url=receiver.url, bearer_token="$env:HOOK_TOKEN")
    task = asyncio.create_task(worker.run())
    await worker.put(transcript("hall", 0, "x"))
    await wait_until_async(lambda: worker.delivered == 1)
    worker.close()
    await task
    assert receiver.requests[0].headers["Authorization"] == "Bearer tok"


def test_config_errors_are_clear():
    host = load_plugins()
    text = (
        "sinks:\n  hook:\n    type: http\n    url: ftp://example\n    headers: {Authorization: x}\n"
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text, "c.yaml", host)
    message = str(err.value)
    assert "sinks.hook.url: expected an http:// or https:// URL" in message
    assert "sinks.hook.headers: use bearer_token or basic_auth" in message
