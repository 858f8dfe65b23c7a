"""The http sink against a real local HTTP server (the standard library's, in a thread)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from listend.daemon.config.loader import parse_config
from listend.daemon.delivery.worker import SinkWorker, dead_letter_path
from listend.daemon.errors import ConfigError
from listend.daemon.plugin.manager import load_plugins
from listend.daemon.plugin.source import PluginContext
from listend.daemon.retry.backoff import Backoff
from listend.plugins.http_sink import HttpSink, HttpSinkConfig, retry_after_seconds
from tests.conftest import free_port
from tests.sink_support import async_test, transcript

SECRET = "s3cret-shared"


@dataclass
class Receiver:
    """Answers POSTs with scripted statuses (then 200), recording every request."""

    port: int
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def answered(self, status: int) -> list[bytes]:
        with self.lock:
            return [body for _h, body, s in self.requests if s == status]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with state.lock:
                status, headers = state.script.pop(0) if state.script else (200, {})
                state.requests.append((dict(self.headers), body, status))
            payload = b'{"error": "nope"}' if status >= 300 else b"ok"
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def make_worker(tmp_path, **options) -> SinkWorker:
    config = HttpSinkConfig.model_validate({"type": "http", **options})
    sink = HttpSink("hook", config, PluginContext("dev", tmp_path))
    return SinkWorker(sink, Backoff(initial=0.01, cap=0.05))


async def until(predicate, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


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
    await until(lambda: worker.delivered == 1)
    worker.close()
    await task
    assert [status for _h, _b, status in receiver.requests] == [500, 503, 502, 200]
    headers, body, _ = receiver.requests[-1]
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
    await until(lambda: worker.delivered == 1)
    worker.close()
    await task
    assert [s for _h, _b, s in receiver.requests] == [400, 200]
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
    await until(lambda: worker.delivered == 1)
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
    await until(lambda: worker.failed >= 2)
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
    await until(lambda: worker.delivered == 4)
    worker.close()
    await task
    [(headers, body, _)] = receiver.requests
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
    await until(lambda: worker.delivered == 1)
    worker.close()
    await task
    assert receiver.requests[0][0]["Authorization"] == "Bearer tok"


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
