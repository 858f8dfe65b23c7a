"""The daemon as systemd runs it: a real `listend run` process, a bound NOTIFY_SOCKET, the real
Deepgram SDK talking to our Deepgram-protocol server, signals for reload and stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from listend.testing import DeepgramTestServer, Script, ThreadedDeepgramTestServer
from tests.support.cli import listend_cmd
from tests.support.net import free_port
from tests.support.notify import Notifications
from tests.support.outbox import outbox_ids
from tests.support.paths import ROOT
from tests.support.waiting import wait_until

DEADLINE = 60.0  # generous: the CPU is shared with other test workers

pytestmark = pytest.mark.slow


def config_text(
    dg: DeepgramTestServer,
    state: Path,
    *,
    sink_b_format: str = "jsonl",
    hall_keyword: str = "listend:2",
    health_port: int | None = None,
    hook: str = "",
    finalize_timeout: float = 3,
) -> str:
    """Two looping scripted sources (hall -> a, door -> b), each tagged to tell streams apart."""
    audio = state.parent / "speech.wav"
    if not audio.exists():
        script = Script().say("turn on the kitchen lights", then_silence=1.0)
        script.say("good night", then_silence=1.0).write_wav(audio)
    health = f"health: {{listen: 127.0.0.1:{health_port}}}\n" if health_port else ""
    hook_sink = f"  hook: {{type: http, url: '{hook}'}}\n" if hook else ""
    return f"""\
device: svc
state_dir: {state}
drain_timeout: 20
deepgram:
  api_key: $env:SVC_DG_KEY
  url: {dg.url}
  keepalive_interval: 2
  finalize_timeout: {finalize_timeout}
  options: {{model: nova-3, interim_results: false}}
sources:
  hall:
    type: file
    path: {audio}
    loop: true
    sinks: [a{", hook" if hook else ""}]
    stream: {{tag: [hall], keywords: ["{hall_keyword}"]}}
  door:
    type: file
    path: {audio}
    loop: true
    sinks: [b]
    stream: {{tag: [door]}}
sinks:
  a: {{type: stdout, format: jsonl}}
  b: {{type: stdout, format: {sink_b_format}}}
{hook_sink}{health}"""


class Daemon:
    """A running `listend run` with its stderr in a file."""

    def __init__(self, config: Path, notify: Notifications, env: dict[str, str]) -> None:
        self.config = config
        self.log_path = config.with_suffix(".log")
        self.terminated = False
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            listend_cmd("run", str(config)),
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            cwd=ROOT,
            env={
                **{k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"},
                **env,
                "NOTIFY_SOCKET": notify.name,
                "WATCHDOG_USEC": "1000000",
            },
        )

    def signal(self, signum: int) -> None:
        self.terminated |= signum == signal.SIGTERM
        self.proc.send_signal(signum)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, text: str, timeout: float = DEADLINE) -> None:
        def logged() -> bool:
            assert self.proc.poll() is None, self.log()
            return text in self.log()

        try:
            wait_until(logged, timeout, f"{text!r} in the log")
        except AssertionError as exc:
            raise AssertionError(f"{exc}:\n{self.log()}") from None

    def stop(self, timeout: float = DEADLINE) -> int:
        """SIGTERM (unless already sent) and wait for the exit status."""
        if self.proc.poll() is None and not self.terminated:
            self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture
def dg_thread() -> Iterator[ThreadedDeepgramTestServer]:
    threaded = ThreadedDeepgramTestServer()
    with threaded:
        yield threaded


@pytest.fixture
def notify() -> Iterator[Notifications]:
    listener = Notifications()
    yield listener
    listener.close()


@pytest.fixture
def start_daemon(tmp_path: Path, notify: Notifications, dg_thread: ThreadedDeepgramTestServer):
    started: list[Daemon] = []
    assert dg_thread.server is not None
    env = {"SVC_DG_KEY": dg_thread.server.api_key}

    def start(text: str) -> Daemon:
        config = tmp_path / "listend.yaml"
        config.write_text(text, encoding="utf-8")
        daemon = Daemon(config, notify, env)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.kill()


def by_tag(dg: DeepgramTestServer, tag: str) -> list[Any]:
    return [c for c in dg.connections if ("tag", tag) in c.query]


def test_notify_sequence_ready_status_watchdog_reload_stopping(
    tmp_path: Path, notify: Notifications, dg_thread, start_daemon
) -> None:
    dg = dg_thread.server
    daemon = start_daemon(config_text(dg, tmp_path / "state"))
    ready = notify.wait_for("READY")
    assert ready["READY"] == "1"
    # READY came after every source's first connection attempt (here: both handshakes)
    wait_until(
        lambda: by_tag(dg, "hall") and by_tag(dg, "door"), DEADLINE, "both handshakes recorded"
    )
    status = notify.wait_for("STATUS")
    assert "streams up" in status["STATUS"]
    notify.wait_for("WATCHDOG")
    daemon.signal(signal.SIGHUP)
    reloading = notify.wait_for("RELOADING")
    assert int(reloading["MONOTONIC_USEC"]) > 0
    notify.wait_for("READY")
    daemon.signal(signal.SIGTERM)
    notify.wait_for("STOPPING")
    assert daemon.stop() == 0
    keys = [key for message in notify.seen for key in message]
    order = ["READY", "STATUS", "WATCHDOG", "RELOADING", "READY", "STOPPING"]
    position = 0
    for key in keys:
        if position < len(order) and key == order[position]:
            position += 1
    assert position == len(order), keys
    # the stop finalized every stream before closing it
    for connection in dg.connections:
        assert connection.control_types[-2:] == ["Finalize", "CloseStream"], connection


def test_reload_one_changed_sink_keeps_every_stream(
    tmp_path: Path, notify: Notifications, dg_thread, start_daemon
) -> None:
    dg = dg_thread.server
    state = tmp_path / "state"
    daemon = start_daemon(config_text(dg, state))
    notify.wait_for("READY")
    wait_until(lambda: len(dg.connections) == 2, DEADLINE, "both streams connected")
    daemon.config.write_text(config_text(dg, state, sink_b_format="captions"), encoding="utf-8")
    daemon.signal(signal.SIGHUP)
    notify.wait_for("RELOADING")
    notify.wait_for("READY")
    daemon.wait_for_log("reloaded: restarted sinks b")
    notify.wait_for("WATCHDOG")  # a heartbeat later: anything that would reconnect has
    assert len(dg.connections) == 2, "no new handshake for the unchanged streams"
    assert all(not c.closed.is_set() for c in dg.connections)

    # a changed source restarts only its own stream, finalized first
    text = config_text(dg, state, sink_b_format="captions", hall_keyword="kiosk:3")
    daemon.config.write_text(text, encoding="utf-8")
    daemon.signal(signal.SIGHUP)
    notify.wait_for("RELOADING")
    notify.wait_for("READY")
    daemon.wait_for_log("reloaded: restarted sources hall")
    wait_until(lambda: len(by_tag(dg, "hall")) == 2, DEADLINE, "hall reconnected")
    old_hall, new_hall = by_tag(dg, "hall")
    assert old_hall.control_types[-2:] == ["Finalize", "CloseStream"]
    assert ("keywords", "kiosk:3") in new_hall.query
    (door,) = by_tag(dg, "door")
    assert not door.closed.is_set()
    assert daemon.stop() == 0


def test_reload_with_a_broken_config_keeps_running(
    tmp_path: Path, notify: Notifications, dg_thread, start_daemon
) -> None:
    dg = dg_thread.server
    state = tmp_path / "state"
    daemon = start_daemon(config_text(dg, state))
    notify.wait_for("READY")
    daemon.config.write_text(
        config_text(dg, state).replace("drain_timeout: 20", "drain_timeout: soon"),
        encoding="utf-8",
    )
    daemon.signal(signal.SIGHUP)
    notify.wait_for("RELOADING")
    notify.wait_for("READY")
    daemon.wait_for_log("reload failed, still running the previous configuration")
    assert "drain_timeout: Input should be a valid number" in daemon.log()
    assert daemon.proc.poll() is None
    assert len(dg.connections) == 2
    assert daemon.stop() == 0


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_readyz_follows_the_deepgram_server_and_metrics_parse(
    tmp_path: Path, notify: Notifications, dg_thread, start_daemon
) -> None:
    dg = dg_thread.server
    port = free_port()
    daemon = start_daemon(config_text(dg, tmp_path / "state", health_port=port))
    notify.wait_for("READY")
    wait_until(lambda: get(port, "/readyz")[0] == 200, DEADLINE, "/readyz 200")
    assert get(port, "/healthz")[0] == 200

    dg_thread.call(dg.stop())
    dg_thread.call(dg.drop_all())
    wait_until(
        lambda: get(port, "/readyz")[0] == 503, DEADLINE, "/readyz 503 while Deepgram is down"
    )
    status, body = get(port, "/readyz")
    reasons = json.loads(body)["reasons"]
    assert any(
        r.startswith(("stream hall: not connected", "stream door: not connected")) for r in reasons
    )
    assert get(port, "/healthz")[0] == 200  # alive, only not ready

    dg_thread.call(dg.start())  # same port
    wait_until(
        lambda: get(port, "/readyz")[0] == 200, DEADLINE, "/readyz 200 once Deepgram is back"
    )

    status, text = get(port, "/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    reconnects = {
        s.labels["source"]: s.value for s in families["listend_stream_reconnects"].samples
    }
    assert sum(reconnects.values()) >= 1
    sent = {s.labels["source"]: s.value for s in families["listend_audio_sent_seconds"].samples}
    assert sent["hall"] > 0
    assert "listend_final_latency_seconds" in families
    assert "listend_outbox_depth" in families
    assert daemon.stop() == 0


def test_second_signal_exits_at_once(
    tmp_path: Path, notify: Notifications, dg_thread, start_daemon
) -> None:
    dg = dg_thread.server
    daemon = start_daemon(config_text(dg, tmp_path / "state", finalize_timeout=10))
    notify.wait_for("READY")
    wait_until(lambda: len(dg.connections) == 2, DEADLINE, "both streams connected")
    dg_thread.call(dg.stop())  # nobody answers the Finalize: the drain would take 20 s
    dg_thread.call(dg.drop_all())
    daemon.signal(signal.SIGTERM)
    notify.wait_for("STOPPING")
    daemon.wait_for_log("draining")

    def second_signal_seen() -> bool:
        # The same signal again within SAME_SIGNAL_WITHIN is one stop delivered twice (a process
        # group signal); resend until one arrives late enough to count as a second request.
        if daemon.proc.poll() is None:
            daemon.signal(signal.SIGTERM)
        return "exiting without draining" in daemon.log()

    wait_until(second_signal_seen, DEADLINE, "a second SIGTERM exiting at once")
    assert daemon.stop(timeout=15) != 0
    assert "exiting without draining" in daemon.log()


def test_reload_keeps_a_sinks_old_settings_when_the_new_ones_fail(
    tmp_path: Path, notify: Notifications, dg_thread, start_daemon, receiver
) -> None:
    dg = dg_thread.server
    state = tmp_path / "state"
    daemon = start_daemon(config_text(dg, state, hook=receiver.url))
    notify.wait_for("READY")
    wait_until(lambda: len(receiver.events) >= 1, DEADLINE, "a first final at the http sink")
    broken = config_text(dg, state, hook=receiver.url).replace(
        "type: http,", "type: http, ca_file: /nonexistent/ca.pem,"
    )
    daemon.config.write_text(broken, encoding="utf-8")
    daemon.signal(signal.SIGHUP)
    notify.wait_for("RELOADING")
    notify.wait_for("READY")
    daemon.wait_for_log("sink hook: cannot start with the new settings, keeping the previous ones")
    before = len(receiver.events)
    wait_until(lambda: len(receiver.events) > before, DEADLINE, "finals still delivered")
    assert len(dg.connections) == 2  # the streams were not touched

    # a clean stop: the streams are finalized and the outbox is empty afterwards
    assert daemon.stop() == 0
    assert asyncio.run(outbox_ids(state, "hook")) == []
    assert all(event["source"] == "hall" for event in receiver.events)
