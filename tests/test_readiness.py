"""Honest readiness with real components: a `listend run` process whose microphone does not
exist and whose MQTT broker refuses connections says so in its startup line and on /readyz,
and a stream whose audio flows to a reachable sink is ready."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.cli import DaemonProcess
from tests.support.net import free_port, wait_for_port
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
