"""Honest readiness with real components: a `listend run` process whose microphone does not
exist and whose MQTT broker refuses connections says so in its startup line and on /readyz,
one whose key Deepgram refuses says so in its READY=1 STATUS= line, and a stream whose audio
flows to a reachable sink is ready."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from listend.daemon.errors import EX_NOPERM
from listend.testing import running_server
from tests.support.cli import DaemonProcess
from tests.support.net import free_port, wait_for_port
from tests.support.notify import Notifications
from tests.support.paths import SAMPLE
from tests.support.waiting import wait_until

DEADLINE = 60.0  # the CPU is shared with other test workers

pytestmark = pytest.mark.slow


def readyz(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def start(tmp_path: Path, sources: str, sinks: str) -> tuple[DaemonProcess, int]:
    port = free_port()
    config = tmp_path / "listend.yaml"
    config.write_text(
        f"device: t\nstate_dir: {tmp_path / 'state'}\n"
        "deepgram: {url: local}\n"  # the embedded engine: no network, no key
        f"health: {{listen: 127.0.0.1:{port}}}\n"
        f"sources:\n{sources}sinks:\n{sinks}",
        encoding="utf-8",
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log", env={"PATH": "/usr/bin:/bin"})
    wait_for_port(port, DEADLINE)
    return daemon, port


def test_missing_microphone_and_refusing_broker_are_not_ready(tmp_path):
    refused = free_port()  # nothing listens there: connections are refused
    daemon, port = start(
        tmp_path,
        "  room:\n    type: microphone\n    device: no-such-mic\n",
        f"  broker:\n    type: mqtt\n    host: 127.0.0.1\n    port: {refused}\n",
    )
    try:
        daemon.wait_log("daemon: ready: ", DEADLINE)
        line = next(x for x in daemon.log().splitlines() if "daemon: ready: " in x)
        assert "0/1 streams up, 0/1 sinks up" in line, line
        assert "not up: source room: " in line, line
        assert "sink broker: " in line, line

        def reasons() -> list[str]:
            status, body = readyz(port)
            assert status == 503, body
            assert body["ready"] is False
            return [str(r) for r in body["reasons"]]  # type: ignore[attr-defined]

        def explained() -> bool:
            found = reasons()
            mic = any(
                "source room: no input device name contains 'no-such-mic'" in r for r in found
            )
            broker = any(r.startswith("sink broker: ") and "refused" in r for r in found)
            return mic and broker

        wait_until(explained, DEADLINE, "/readyz naming the microphone and the broker")
    finally:
        assert daemon.terminate() == 0


def test_audio_flowing_to_a_reachable_sink_is_ready(tmp_path):
    daemon, port = start(
        tmp_path,
        f"  sample:\n    type: file\n    path: {SAMPLE}\n    loop: true\n",
        "  out:\n    type: file\n    format: jsonl\n",
    )
    try:
        wait_until(lambda: readyz(port)[0] == 200, DEADLINE, "/readyz 200")
        _status, body = readyz(port)
        assert body["ready"] is True
        assert body["reasons"] == []
    finally:
        assert daemon.terminate() == 0


def test_a_key_deepgram_refuses_is_the_reason_in_the_status_line(tmp_path):
    """401 is not an outage: the stream stops at once, before its live source (a command that
    has not sent audio yet) delivers any. READY=1's STATUS= (what `systemctl status` shows)
    still comes, naming the refused credentials and where to set them, never the key; then
    the daemon exits 77 (not restarted by the unit)."""
    config = tmp_path / "listend.yaml"
    key = "not-the-key-deepgram-knows"
    notify = Notifications()
    try:
        with running_server() as dg:
            config.write_text(
                f"device: t\nstate_dir: {tmp_path / 'state'}\n"
                f"deepgram:\n  url: {dg.url}\n  api_key: $env:DG_TEST_KEY\n"
                "sources:\n  hall: {type: command, command: [sleep, '60']}\n"
                "sinks:\n  out: {type: stdout, format: jsonl}\n",
                encoding="utf-8",
            )
            env = {**os.environ, "DG_TEST_KEY": key, "NOTIFY_SOCKET": notify.name}
            daemon = DaemonProcess(config, tmp_path / "daemon.log", env=env)
            ready = notify.wait_for("READY", DEADLINE)
            code = daemon.wait(DEADLINE)
            [refusal] = dg.refusals
    finally:
        notify.close()
    assert refusal.status == 401
    status = ready["STATUS"]
    assert status.startswith("0/1 streams up, 1/1 sinks up"), status
    refused = "stream hall: not connected (Deepgram refused the credentials for source hall: "
    assert f"; not up: source hall: starting; {refused}HTTP 401" in status
    assert "check deepgram.api_key" in status
    assert key not in status
    assert code == EX_NOPERM, daemon.log()
    assert key not in daemon.log()


def test_a_source_that_stopped_with_an_error_stays_a_reason(tmp_path):
    """A stream Deepgram refuses (400, an unknown model) stops its source; /readyz keeps
    saying why while the other source runs, instead of forgetting it as if it had ended."""
    port = free_port()
    config = tmp_path / "listend.yaml"
    with running_server(models=["nova-3"]) as dg:
        config.write_text(
            f"device: t\nstate_dir: {tmp_path / 'state'}\n"
            f"deepgram:\n  url: {dg.url}\n  api_key: $env:DG_TEST_KEY\n"
            f"health: {{listen: 127.0.0.1:{port}}}\n"
            "sources:\n"
            f"  good: {{type: file, path: {SAMPLE}, loop: true}}\n"
            f"  bad: {{type: file, path: {SAMPLE}, loop: true, stream: {{model: no-such}}}}\n"
            "sinks:\n  out: {type: stdout, format: jsonl}\n",
            encoding="utf-8",
        )
        env = {**os.environ, "DG_TEST_KEY": dg.api_key}
        daemon = DaemonProcess(config, tmp_path / "daemon.log", env=env)
        try:
            daemon.wait_log("source bad stopped: ", DEADLINE)
            answers: list[tuple[int, dict[str, object]]] = []

            def only_bad_is_down() -> bool:
                answers.append(readyz(port))
                status, body = answers[-1]
                reasons = [str(r) for r in body["reasons"]]  # type: ignore[attr-defined]
                assert status == 503, body
                return len(reasons) == 1  # once the good stream is up

            wait_until(only_bad_is_down, DEADLINE, "/readyz naming only the bad source")
        finally:
            code = daemon.terminate()
    [reason] = answers[-1][1]["reasons"]  # type: ignore[misc]
    assert reason.startswith("stream bad: not connected (Deepgram refused the stream"), reason
    assert code == 0, daemon.log()
