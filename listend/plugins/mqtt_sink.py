"""The ``mqtt`` sink: transcripts to an MQTT broker, with Home Assistant discovery.

Topics (``topic`` template, default ``listend/{device}/{source}/transcript``): finals on the
topic itself, other kinds it receives on ``<topic>/interim``, ``<topic>/utterance_end`` and
``<topic>/speech_started``; ``phrase`` events on ``<topic>/phrase/<trigger>``, detections also
on ``<topic>/phrase`` (Home Assistant's event entity). Payloads are the event JSON (never
retained). The retained
``listend/{device}/status`` is ``online`` while connected and ``offline`` after a clean stop
or, through the Last Will, when the daemon dies.

A background task keeps one connection up, reconnecting with the shared backoff; ``deliver``
waits for it, publishes the batch and returns once every PUBACK/PUBCOMP is in. If the
connection drops first, :class:`DeliveryError` keeps the batch in the outbox for a retry
(consumers dedupe on ``id``). Interim results go out with QoS 0: they are disposable.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import ssl
from collections.abc import Coroutine, Sequence
from typing import Any

from paho.mqtt.enums import MQTTProtocolVersion

from listend.api import (
    AnyEvent,
    Backoff,
    ConfigError,
    DeliveryError,
    EventKind,
    Outage,
    PhraseEvent,
    PluginContext,
    Sink,
    cancel_and_wait,
    retrying,
    to_json,
)
from listend.plugins.ha_controls import ControlTopics
from listend.plugins.ha_discovery import Discovery
from listend.plugins.mqtt_config import MqttSinkConfig
from listend.plugins.mqtt_connection import MqttConnection, MqttError, MqttSettings, Will
from listend.plugins.mqtt_controls import Controls

log = logging.getLogger(__name__)

KIND_SUFFIX: dict[EventKind, str] = {
    "final": "",
    "interim": "/interim",
    "utterance_end": "/utterance_end",
    "speech_started": "/speech_started",
    "metadata": "/metadata",
    "phrase": "/phrase",
}
#: Home Assistant waits this long at most (random) before re-sending discovery on its birth.
BIRTH_RESEND_MAX_DELAY = 3.0
Ack = asyncio.Future[None]


class MqttSink(Sink):
    type_name = "mqtt"
    config_model = MqttSinkConfig
    config: MqttSinkConfig
    max_batch = 50

    def __init__(self, name: str, config: Any, context: PluginContext) -> None:
        super().__init__(name, config, context)
        cfg = self.config
        self.status_topic = cfg.status_topic.format(device=context.device, source="")
        self._ready = asyncio.Event()
        self._outage: Outage | None = None  # the connection's: why it is down, for problem()
        self._conn: MqttConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._sources: set[str] = set(context.sources)
        self._birth_resend: asyncio.TimerHandle | None = None
        ha = (
            cfg.homeassistant
            if cfg.homeassistant is not None and cfg.homeassistant.enabled
            else None
        )
        topics = ControlTopics(self.status_topic.rpartition("/")[0] or self.status_topic)
        self.controls = (
            None
            if ha is None or context.control is None
            else Controls(
                name,
                context.control,
                topics,
                lambda: sorted(self._sources),
                qos=max(cfg.qos, 1),
                interval=ha.diagnostics_interval,
            )
        )
        self._controls_task: asyncio.Task[None] | None = None
        self.discovery = (
            Discovery(
                device=context.device,
                status_topic=self.status_topic,
                final_topic=self.topic_for_source,
                phrase_topic=lambda source: self.topic_for_source(source, "phrase"),
                triggers=context.triggers,
                prefix=ha.prefix,
                qos=max(cfg.qos, 1),
                mode=ha.mode,
                controls=topics if self.controls is not None else None,
                configuration_url=ha.configuration_url,
            )
            if ha is not None
            else None
        )

    def topic_for_source(self, source: str, kind: EventKind = "final") -> str:
        base = self.config.topic.format(device=self.context.device, source=source)
        return base + KIND_SUFFIX[kind]

    def _settings(self) -> MqttSettings:
        cfg = self.config
        return MqttSettings(
            host=cfg.host,
            port=cfg.port or (8883 if cfg.tls is not None else 1883),
            client_id=cfg.client_id or f"listend-{self.context.device}-{self.name}",
            protocol=MQTTProtocolVersion.MQTTv5
            if cfg.protocol == "5"
            else MQTTProtocolVersion.MQTTv311,
            keepalive=cfg.keepalive,
            username=cfg.username.reveal() if cfg.username else None,
            password=cfg.password.reveal() if cfg.password else None,
            tls=self._tls_context(),
            tls_insecure=cfg.tls is not None and cfg.tls.insecure,
            will=Will(self.status_topic, "offline", qos=1, retain=True),
            timeout=cfg.timeout,
        )

    def _tls_context(self) -> ssl.SSLContext | None:
        tls = self.config.tls
        if tls is None:
            return None
        try:
            context = ssl.create_default_context(cafile=tls.ca_file)
            if tls.cert_file is not None:
                context.load_cert_chain(tls.cert_file, tls.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"sink {self.name}: TLS files cannot be loaded: {exc}") from None
        if tls.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        settings = self._settings()  # TLS/config errors surface here, before any task runs
        self._task = asyncio.create_task(
            self._maintain(settings), name=f"listend[mqtt:{self.name}]"
        )

    async def stop(self) -> None:
        """Publish ``offline`` (retained) and disconnect cleanly, so no Last Will fires."""
        self._stopping = True
        if self._birth_resend is not None:
            self._birth_resend.cancel()
        conn = self._conn
        if conn is not None and conn.is_connected:
            with contextlib.suppress(MqttError):
                await conn.publish(self.status_topic, "offline", qos=1, retain=True)
            await conn.disconnect()
        if self._controls_task is not None:
            await cancel_and_wait(self._controls_task)
        if self._task is not None:
            await cancel_and_wait(self._task)

    def reachable(self) -> bool:
        return self._ready.is_set()

    def problem(self) -> str | None:
        if self._ready.is_set():
            return None
        outage = self._outage
        return outage.last_error if outage is not None and outage.last_error else "connecting"

    async def _maintain(self, settings: MqttSettings) -> None:
        """Keep a connection up: connect, announce, wait for it to drop, back off, repeat."""
        backoff = Backoff(cap=self.config.reconnect_max_delay)
        where = f"{settings.host}:{settings.port}"
        outage = self._outage = Outage(
            f"sink {self.name}",
            retrying="retrying",
            recovered=f"connected to MQTT broker {where} again",
            stable_after=backoff.stable_after,
            logger=log,
        )
        while not self._stopping:
            conn = await retrying(
                lambda: self._connect(settings),
                backoff=backoff,
                outage=outage,
                describe=lambda exc: f"MQTT broker {where}: {exc}",
            )
            backoff.connected()
            if not outage.up():
                log.info("sink %s: connected to MQTT broker %s", self.name, where)
            self._conn = conn
            self._ready.set()
            if self.controls is not None:
                self._controls_task = asyncio.create_task(
                    self.controls.run(conn), name=f"listend[mqtt:{self.name}].diagnostics"
                )
            try:
                await asyncio.wait([conn.closed])
            finally:
                self._ready.clear()
                if self._controls_task is not None:
                    await cancel_and_wait(self._controls_task)
                if self._birth_resend is not None:
                    self._birth_resend.cancel()
            if not self._stopping:
                outage.failed(f"lost MQTT broker {where}: {conn.closed.exception() or 'closed'}")
                backoff.failed()
                await backoff.wait()

    async def _connect(self, settings: MqttSettings) -> MqttConnection:
        """One attempt: a new connection, announced; released again if that fails."""
        conn = MqttConnection(settings, on_message=self._on_message, name=f"mqtt:{self.name}")
        try:
            await conn.connect()
            await self._announce(conn)
        except asyncio.CancelledError:
            conn.abort()
            raise
        except Exception as exc:  # MqttError, or a bug: either way, the caller reconnects
            await conn.disconnect()
            if not isinstance(exc, MqttError):
                log.exception("sink %s: unexpected error while connecting", self.name)
            raise
        return conn

    async def _announce(self, conn: MqttConnection) -> None:
        """On every (re)connect: status ``online``, then Home Assistant discovery."""
        await conn.publish(self.status_topic, "online", qos=1, retain=True)
        if self.discovery is not None:
            await conn.subscribe(self.discovery.birth_topic, qos=1)
            await self._publish_discovery(conn)
        if self.controls is not None:
            await self.controls.announce(conn)

    async def _publish_discovery(self, conn: MqttConnection) -> None:
        if self.discovery is None:
            return
        waiters = [
            conn.publish_nowait(topic, payload, qos=1, retain=True)
            for topic, payload in self._discovery_messages()
        ]
        await conn.wait_acks([w for w in waiters if w is not None])

    def _discovery_messages(self) -> list[tuple[str, str]]:
        if self.discovery is None:
            return []
        discovery = self.discovery
        if self.controls is not None:  # every sink's outbox, as the daemon runs them now
            control = self.controls.control
            discovery = dataclasses.replace(
                discovery,
                sinks=tuple(control.sinks()),
                configuration_url=discovery.configuration_url or control.page_url(),
            )
        return discovery.messages(self._sources)

    def _on_message(self, topic: str, payload: bytes) -> None:
        """A switch command, or Home Assistant's birth: re-send discovery after a short delay."""
        conn = self._conn
        if (
            self.controls is not None
            and conn is not None
            and self.controls.on_message(conn, topic, payload)
        ):
            return
        if self.discovery is None or topic != self.discovery.birth_topic:
            return
        if payload.strip() != b"online" or self._conn is None:
            return
        conn = self._conn
        if self._birth_resend is not None:
            self._birth_resend.cancel()
        delay = random.uniform(0, BIRTH_RESEND_MAX_DELAY)  # noqa: S311 - not cryptographic
        log.info("sink %s: Home Assistant restarted; re-sending discovery", self.name)
        self._birth_resend = asyncio.get_running_loop().call_later(
            delay, self._resend_discovery, conn
        )

    def _resend_discovery(self, conn: MqttConnection) -> None:
        if self.discovery is None or not conn.is_connected:
            return
        try:
            for topic, payload in self._discovery_messages():
                conn.publish_nowait(topic, payload, qos=1, retain=True)
        except MqttError as exc:
            log.warning("sink %s: discovery not re-sent: %s", self.name, exc)

    # -- delivery ----------------------------------------------------------------------------

    async def deliver(self, events: Sequence[AnyEvent]) -> None:
        await self._ready.wait()  # the outbox holds the events meanwhile
        conn = self._conn
        if conn is None:  # set before _ready, never unset: only a bug gets here
            raise RuntimeError(f"sink {self.name}: ready without a connection")
        await self._discover_new_sources(conn, events)
        try:
            waiters = self._publish(conn, events)
        except MqttError as exc:
            raise DeliveryError(str(exc)) from None
        await self._confirmed(conn, waiters)

    def send_now(self, events: Sequence[AnyEvent]) -> Coroutine[Any, Any, None] | None:
        """Publish now when connected and every source is announced; then await the acks."""
        conn = self._conn
        if (
            not self._ready.is_set()
            or conn is None
            or not self._sources.issuperset(e.source for e in events)
        ):
            return None
        try:
            waiters = self._publish(conn, events)
        except MqttError:
            return None  # deliver() tries again, and reports it
        return self._confirmed(conn, waiters)

    def _publish(self, conn: MqttConnection, events: Sequence[AnyEvent]) -> list[Ack]:
        waiters = []
        for event in events:
            qos = 0 if event.kind == "interim" else self.config.qos
            payload = to_json(event)
            for topic in self._topics(event):
                waiter = conn.publish_nowait(topic, payload, qos=qos)
                if waiter is not None:
                    waiters.append(waiter)
        return waiters

    async def _confirmed(self, conn: MqttConnection, waiters: list[Ack]) -> None:
        try:
            await conn.wait_acks(waiters)
        except MqttError as exc:
            raise DeliveryError(str(exc)) from None

    def _topics(self, event: AnyEvent) -> list[str]:
        topic = self.topic_for_source(event.source, event.kind)
        if not isinstance(event, PhraseEvent):
            return [topic]
        per_trigger = f"{topic}/{event.trigger}"
        return [per_trigger, topic] if event.status == "detected" else [per_trigger]

    async def _discover_new_sources(self, conn: MqttConnection, events: Sequence[AnyEvent]) -> None:
        """A source not known at start (e.g. added by a reload) gets its entities now."""
        new = {e.source for e in events} - self._sources
        if not new:
            return
        self._sources |= new
        if self.discovery is not None:
            try:
                await self._publish_discovery(conn)
            except MqttError as exc:
                raise DeliveryError(f"discovery: {exc}") from None
