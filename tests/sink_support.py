"""Helpers for the sink tests: events as a stream session would make them, a mosquitto process
the test controls (stop/restart on the same port), and a real MQTT subscriber."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import pwd
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from listend.daemon.events import (
    TranscriptEvent,
    UtteranceEndEvent,
    event_id,
)
from tests.conftest import wait_for_port

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def transcript(
    source: str,
    seq: int,
    text: str,
    *,
    device: str = "dev",
    epoch: int = 1_772_366_400_000,
    start: float | None = None,
    end: float | None = None,
    is_final: bool = True,
    speech_final: bool = True,
) -> TranscriptEvent:
    start = float(seq) if start is None else start
    end = start + 0.8 if end is None else end
    return TranscriptEvent(
        id=event_id(device, source, epoch, seq),
        device=device,
        source=source,
        epoch=epoch,
        seq=seq,
        start=start,
        end=end,
        started_at=T0 + timedelta(seconds=start),
        ended_at=T0 + timedelta(seconds=end),
        text=text,
        confidence=0.9,
        is_final=is_final,
        speech_final=speech_final,
    )


def utterance_end(
    source: str, seq: int, *, device: str = "dev", epoch: int = 1
) -> UtteranceEndEvent:
    return UtteranceEndEvent(
        id=event_id(device, source, epoch, seq),
        device=device,
        source=source,
        epoch=epoch,
        seq=seq,
        last_word_end=float(seq),
        at=T0,
    )


def async_test(func: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an ``async def`` test in a fresh event loop (the suite has no asyncio plugin)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(func(*args, **kwargs))

    return wrapper


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Mosquitto:
    """A broker on a fixed loopback port that a test can stop and start again."""

    def __init__(
        self, port: int, workdir: Path, *, persistence: bool = False, extra: str = ""
    ) -> None:
        self.port = port
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        # as root, mosquitto switches to user "mosquitto", who cannot read pytest's tmp dirs
        user = pwd.getpwuid(os.getuid()).pw_name
        lines = [f"user {user}", f"listener {port} 127.0.0.1", "allow_anonymous true"]
        if persistence:
            lines += ["persistence true", f"persistence_location {workdir}/"]
        else:
            lines += ["persistence false"]
        self.conf.write_text("\n".join(lines) + "\n" + extra)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen(
            [binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # saves its persistence file on the way out
            self.proc.wait(timeout=10)
        self.proc = None


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int

    def json(self) -> dict:  # type: ignore[type-arg]
        return json.loads(self.payload)


class Subscriber:
    """A real MQTT client in paho's own thread, collecting what it receives."""

    def __init__(
        self, port: int, topics: list[str], *, client_id: str = "", persistent: bool = False
    ) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.topics = topics
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=not persistent,
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_args: self._subscribed.set()
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise AssertionError("subscriber did not get its SUBACK")

    def _on_connect(self, client, _userdata, _flags, _reason, _props) -> None:
        if self.topics:
            client.subscribe([(topic, 1) for topic in self.topics])
        else:  # only publishing
            self._subscribed.set()

    def _on_message(self, _client, _userdata, message) -> None:
        with self._lock:
            self.messages.append(
                Received(message.topic, bytes(message.payload), bool(message.retain), message.qos)
            )

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float, what: str):
        def check() -> bool:
            with self._lock:
                return predicate(list(self.messages))

        wait_until(check, timeout, what)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class DaemonProcess:
    """``listend run CONFIG`` as a child process, its log in a file the test can wait on."""

    def __init__(self, config: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        from tests.conftest import ROOT, listend_cmd  # noqa: PLC0415

        self.log_path = log_path
        self.out_path = log_path.with_suffix(".out")
        self._log = log_path.open("w")
        self._out = self.out_path.open("w")
        self.proc = subprocess.Popen(
            [*listend_cmd("--log-level", "debug", "run", str(config))],
            stdout=self._out,
            stderr=self._log,
            cwd=ROOT,
            env=env,
            text=True,
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def output(self) -> str:
        return self.out_path.read_text()

    def wait_log(self, text: str, timeout: float = 20.0) -> None:
        def seen() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited ({self.proc.returncode}):\n{self.log()}")
            return text in self.log()

        wait_until(seen, timeout, f"{text!r} in the daemon log")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._close()

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (drain), then the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise
        finally:
            self._close()
        return self.proc.returncode

    def _close(self) -> None:
        self._log.close()
        self._out.close()


async def store(box: Any, *events: Any, keep_through: int = 0) -> list[Any]:
    """Store ``events`` in an open outbox as the sink worker does: staged, then committed in
    one fsynced transaction. Returns the events dropped for room."""
    return await box.commit(box.stage(events), keep_through=keep_through)


async def seed_outbox(state_dir: Path, sink: str, events: list[Any]) -> None:
    """Leave events in a sink's outbox, as a daemon killed before delivering them would."""
    from listend.daemon.delivery.outbox import Outbox  # noqa: PLC0415
    from listend.daemon.delivery.worker import outbox_path  # noqa: PLC0415

    box = Outbox(outbox_path(state_dir, sink), max_events=10**6)
    await box.open()
    for event in events:
        await store(box, event)
    await box.close()


async def outbox_ids(state_dir: Path, sink: str) -> list[str]:
    from listend.daemon.delivery.outbox import Outbox  # noqa: PLC0415
    from listend.daemon.delivery.worker import outbox_path  # noqa: PLC0415

    box = Outbox(outbox_path(state_dir, sink), max_events=10**6)
    await box.open()
    ids = [q.event.id for q in await box.peek(10**6)]
    await box.close()
    return ids
