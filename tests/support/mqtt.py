"""MQTT for the sink tests: a mosquitto process the test controls (stop/restart on the same
port), and a real subscriber in paho's own thread."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.net import wait_for_port
from tests.support.waiting import wait_until


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
        if not Path(binary).exists():
            raise AssertionError("mosquitto is not installed (scripts/setup-system.sh installs it)")
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
