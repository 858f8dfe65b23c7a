"""The mqtt sink's Home Assistant controls at run time: the pause switch and diagnostics.

Commands arrive on ``listend/{device}/{source}/transcribing/set`` (``ON``/``OFF``) and go to
the daemon through :class:`listend.api.DaemonControl`; the switch state and the diagnostics
are published retained, the diagnostics every ``interval`` seconds while connected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from listend.api import DaemonControl
from listend.plugins.ha_controls import (
    OFF,
    ON,
    ControlTopics,
    diagnostics_payload,
    sink_payload,
)
from listend.plugins.mqtt_connection import MqttConnection, MqttError

log = logging.getLogger(__name__)


class Controls:
    def __init__(
        self,
        name: str,
        control: DaemonControl,
        topics: ControlTopics,
        sources: Callable[[], Iterable[str]],
        *,
        qos: int,
        interval: float,
    ) -> None:
        self.name = name
        self.control = control
        self.topics = topics
        self.sources = sources
        self.qos = qos
        self.interval = interval
        self._shown: set[str] = set()  # sources whose switch state this connection has

    async def announce(self, conn: MqttConnection) -> None:
        """On every (re)connect: take commands, show every switch as it is now."""
        self._shown.clear()
        await conn.subscribe(self.topics.commands, qos=1)
        await conn.wait_acks(self._publish_diagnostics(conn))

    def _publish_switch(self, conn: MqttConnection, source: str) -> asyncio.Future[None] | None:
        status = self.control.stream_status(source)
        if status is None:  # not running (yet: the sinks start before the sources)
            return None
        self._shown.add(source)
        state = OFF if status.paused else ON
        return conn.publish_nowait(self.topics.switch(source), state, qos=self.qos, retain=True)

    def on_message(self, conn: MqttConnection, topic: str, payload: bytes) -> bool:
        """True if it was a switch command (handled here)."""
        source = self.topics.source_of(topic)
        if source is None:
            return False
        command = payload.strip().decode("utf-8", "replace").upper()
        if command not in (ON, OFF):
            log.warning("sink %s: %s: expected ON or OFF, got %r", self.name, topic, command)
            return True
        if not self.control.set_paused(source, paused=command == OFF):
            log.warning("sink %s: switch for unknown source %s ignored", self.name, source)
            return True
        try:
            self._publish_switch(conn, source)
            self._publish_diagnostics(conn)
        except MqttError as exc:
            log.warning("sink %s: switch state not published: %s", self.name, exc)
        return True

    def _publish_diagnostics(self, conn: MqttConnection) -> list[asyncio.Future[None]]:
        waiters = [
            self._publish_switch(conn, source)
            for source in self.sources()
            if source not in self._shown
        ]
        for source in self.sources():
            status = self.control.stream_status(source)
            if status is not None:
                payload = diagnostics_payload(status)
                waiters.append(
                    conn.publish_nowait(
                        self.topics.diagnostics(source), payload, qos=self.qos, retain=True
                    )
                )
        for sink in self.control.sinks():
            depth = self.control.outbox_depth(sink)
            if depth is not None:
                topic = self.topics.sink(sink)
                payload = sink_payload(depth)
                waiters.append(conn.publish_nowait(topic, payload, qos=self.qos, retain=True))
        return [w for w in waiters if w is not None]

    async def run(self, conn: MqttConnection) -> None:
        """Publish the diagnostics every ``interval`` seconds until cancelled or disconnected."""
        while conn.is_connected:
            try:
                await conn.wait_acks(self._publish_diagnostics(conn))
            except MqttError as exc:
                log.debug("sink %s: diagnostics not published: %s", self.name, exc)
                return  # the connection is going; the next one starts a new loop
            await asyncio.sleep(self.interval)
