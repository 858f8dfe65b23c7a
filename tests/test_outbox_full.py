"""A full disk under the outbox, for real: a 2 MB tmpfs as the state directory. The sink stops
taking events with one error, the rest goes on, and it resumes when space returns."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from listend.daemon.delivery.worker import SinkWorker
from listend.daemon.plugin.source import PluginContext
from listend.daemon.retry.backoff import Backoff
from listend.daemon.service.metrics import Metrics
from listend.daemon.service.readiness import SinkState, readiness, status_line
from listend.daemon.stream.stats import SessionStats
from listend.plugins.http_sink import HttpSink, HttpSinkConfig
from listend.testing import Script, ThreadedDeepgramTestServer
from tests.support.cli import DaemonProcess
from tests.support.events import transcript
from tests.support.http import Receiver
from tests.support.net import free_port
from tests.support.waiting import async_test, wait_until, wait_until_async

DEADLINE = 90.0  # generous: the CPU is shared with other test workers
BALLAST = 1024 * 1024  # of the 2 MB: fills the disk sooner, and is what the test frees


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (with a ballast file taking half of it), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("a real full disk is a 2 MB tmpfs here, and mounting one needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        (mount / "ballast").write_bytes(b"\0" * BALLAST)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def refusal_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and "cannot be written" in r.getMessage()
    ]


@async_test
async def test_a_full_disk_refuses_with_one_error_then_resumes_and_delivers(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with Receiver() as hook:
        hook.script = [(503, {})] * 100_000  # the sink is down: everything stays stored
        config = HttpSinkConfig.model_validate({"type": "http", "url": hook.url})
        sink = HttpSink("hook", config, PluginContext("dev", small_disk))
        worker = SinkWorker(sink, Backoff(cap=0.05))
        task = asyncio.create_task(worker.run())
        seq = 0
        while not worker.refusal.active:  # fill the disk, a commit per event (speech rate)
            await worker.put(transcript("a", seq, f"event {seq} " + "x" * 500))
            await worker.commit()
            seq += 1
        stored = len(worker.outbox)
        assert stored > 0
        for more in range(50):  # the stream goes on: refused, counted, not raised
            await worker.put(transcript("a", seq + more, "refused"))
        assert worker.refusal.total >= 50
        problem = worker.problem()
        assert problem is not None
        assert problem.startswith("outbox cannot be written (database or disk is full)")
        assert len(refusal_errors(caplog)) == 1

        (small_disk / "ballast").unlink()  # space returns
        await wait_until_async(lambda: not worker.refusal.active, timeout=60)
        assert worker.refusal.describe() is None  # (problem() still names the failing hook)
        assert "were refused meanwhile" in caplog.text
        after = transcript("b", 0, "stored once space returned")
        await worker.put(after)
        assert len(worker.outbox) == stored + 1

        hook.script.clear()  # the sink is back: the backlog is delivered
        await wait_until_async(lambda: worker.depth() == 0, timeout=60)
        worker.close()
        await task
        delivered = [json.loads(body)["id"] for body in hook.answered(200)]
        assert delivered == [*(transcript("a", n, "").id for n in range(stored)), after.id]
        assert len(refusal_errors(caplog)) == 1


def readyz(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
            return dict(json.load(response))
    except urllib.error.HTTPError as error:
        return dict(json.load(error))


def refused_reason(port: int) -> str | None:
    reasons = [r for r in readyz(port)["reasons"] if "outbox cannot be written" in r]
    return reasons[0] if reasons else None


@pytest.mark.slow
def test_the_daemon_survives_a_full_disk_and_delivers_the_backlog(
    small_disk: Path, tmp_path: Path
) -> None:
    """Two looping sources faster than real time, the sink down, state_dir on a 2 MB disk."""
    audio = tmp_path / "speech.wav"
    Script().say("turn on the kitchen lights", then_silence=0.5).write_wav(audio)
    port = free_port()
    with ThreadedDeepgramTestServer() as dg, Receiver() as hook:
        hook.script = [(503, {})] * 100_000
        config = tmp_path / "listend.yaml"
        sources = "".join(
            f"  {name}: {{type: file, path: {audio}, loop: true, realtime: false, sinks: [hook]}}\n"
            for name in ("hall", "door")
        )
        config.write_text(
            f"device: full\nstate_dir: {small_disk}\nhealth: {{listen: 127.0.0.1:{port}}}\n"
            f"deepgram:\n  api_key: $env:FULL_DG_KEY\n  url: {dg.url}\n"
            f"sources:\n{sources}sinks:\n  hook: {{type: http, url: '{hook.url}'}}\n"
        )
        env = {**os.environ, "FULL_DG_KEY": dg.api_key}
        daemon = DaemonProcess(config, tmp_path / "daemon.log", env=env)
        try:
            daemon.wait_log("ready:", timeout=DEADLINE)
            wait_until(lambda: refused_reason(port), DEADLINE, "/readyz: outbox cannot be written")
            assert "database or disk is full" in str(refused_reason(port))
            backlog = readyz(port)["sinks"]["hook"]["outbox"]
            assert backlog > 0
            wait_until(lambda: "event(s) refused" in str(refused_reason(port)), DEADLINE)
            assert daemon.proc.poll() is None  # up, streams going on

            (small_disk / "ballast").unlink()  # space returns, and the sink with it
            hook.script.clear()
            daemon.wait_log("were refused meanwhile", timeout=DEADLINE)
            wait_until(lambda: len(hook.answered(200)) >= backlog, DEADLINE, "backlog delivered")
            assert daemon.proc.poll() is None
            log = daemon.log()
            assert log.count("outbox cannot be written (") == 1, log
            assert "Traceback" not in log
        finally:
            code = daemon.terminate()
        assert code == 0, daemon.log()


def fill(directory: Path) -> None:
    """Take every byte left on the disk."""
    with (directory / "filler").open("wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass


@async_test
async def test_a_new_outbox_on_a_full_disk_starts_refusing_and_opens_later(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fill(small_disk)
    with Receiver() as hook:
        config = HttpSinkConfig.model_validate({"type": "http", "url": hook.url})
        worker = SinkWorker(HttpSink("hook", config, PluginContext("dev", small_disk)))
        await worker.open()  # the daemon's start: not an error that stops it
        task = asyncio.create_task(worker.run())
        await worker.put(transcript("a", 0, "refused"))
        assert worker.refusal.total == 1
        assert "outbox cannot be written" in str(worker.problem())

        (small_disk / "filler").unlink()
        await wait_until_async(lambda: not worker.refusal.active, timeout=60)
        event = transcript("a", 1, "stored")
        await worker.put(event)
        await wait_until_async(lambda: len(hook.answered(200)) == 1, timeout=60)
        worker.close()
        await task
        assert json.loads(hook.answered(200)[0])["id"] == event.id
        assert len(refusal_errors(caplog)) == 1
        assert "was damaged" not in caplog.text  # no 0-byte file left by a failed creation


class RefusingProbe:
    """A running daemon whose sink ``hook`` refuses events (the shape Daemon exposes)."""

    phase = "running"

    def stream_stats(self) -> dict[str, SessionStats]:
        return {"hall": SessionStats(connected=True, last_audio_at=time.monotonic())}

    def sink_states(self) -> dict[str, SinkState]:
        problem = "outbox cannot be written (database or disk is full); 7 event(s) refused"
        return {
            "hook": SinkState(
                depth=3, delivered=1, failed=0, reachable=True, refused=7, problem=problem
            )
        }

    def stalls(self) -> list[str]:
        return []


def test_readyz_status_and_metrics_name_the_refusing_sink() -> None:
    probe = RefusingProbe()
    reason = "sink hook: outbox cannot be written (database or disk is full); 7 event(s) refused"
    assert readiness(probe) == [reason]
    assert status_line(probe).endswith(f"; not up: {reason}")
    metrics = Metrics(probe)
    text = generate_latest(metrics.registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    [sample] = families["listend_outbox_refused"].samples
    assert sample.labels == {"sink": "hook"}
    assert sample.value == 7
