"""One MQTT connection on the asyncio loop, wrapping paho-mqtt 2.x (callback API VERSION2).

Shaped like aiomqtt 2.5's client: paho's socket is driven by the event loop
(``add_reader``; ``add_writer`` only while the socket is full: a publish is written at once,
not a loop iteration later), not by a paho thread; only the
blocking ``connect()`` (DNS, TCP, TLS handshake) runs in an executor, and only callbacks that
paho makes from that thread cross back with ``call_soon_threadsafe``. Results come back as
futures completed from paho callbacks (guarded by ``done()``, since paho may call twice);
per-message-id waiters are removed in ``finally``. Every failure is one :class:`MqttError`.

A connection is used once: the sink makes a new one per (re)connect, so nothing from a dead
session (paho's resend queues, half-acknowledged ids) leaks into the next; the durable outbox
above it does the resending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from listend.api import cancel_and_wait
from listend.plugins.mqtt_settings import MqttSettings, Will

__all__ = ["MqttConnection", "MqttError", "MqttSettings", "Will", "quick_ack"]

log = logging.getLogger(__name__)

OnMessage = Callable[[str, bytes], None]


class MqttError(Exception):
    """Connecting, publishing or subscribing failed, or the connection was lost."""


MISC_CHECKS_PER_KEEPALIVE = 10  # paho's loop_misc, per keepalive interval


class MqttConnection:
    """A single session with the broker; :attr:`closed` completes when it ends."""

    def __init__(
        self, settings: MqttSettings, *, on_message: OnMessage | None = None, name: str = "mqtt"
    ) -> None:
        self.settings = settings
        self.name = name
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._on_message_cb = on_message
        self._connected: asyncio.Future[None] = self._loop.create_future()
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._fds: set[int] = set()
        self._misc: asyncio.Task[None] | None = None
        self._up = False
        self._writing = False  # publish_nowait writes itself: no writer callback meanwhile
        self._writer: Callable[[], None] | None = None  # registered with the loop, if any
        self._client = self._make_client()

    def _make_client(self) -> paho.Client:
        s = self.settings
        v5 = s.protocol == paho.MQTTv5
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=s.protocol,
            clean_session=None if v5 else True,
            reconnect_on_failure=False,
        )
        client.enable_logger(logging.getLogger("paho"))
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.tls is not None:
            client.tls_set_context(s.tls)
            client.tls_insecure_set(s.tls_insecure)
        if s.will is not None:
            client.will_set(s.will.topic, s.will.payload, s.will.qos, retain=s.will.retain)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write
        return client

    @property
    def is_connected(self) -> bool:
        return self._up and not self.closed.done()

    # -- operations --------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the socket (in an executor: it blocks) and wait for a positive CONNACK."""
        s = self.settings
        kwargs: dict[str, Any] = {}
        if s.protocol == paho.MQTTv5:
            kwargs["clean_start"] = True
        try:
            await self._loop.run_in_executor(
                None, lambda: self._client.connect(s.host, s.port, s.keepalive, **kwargs)
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._teardown(MqttError(f"cannot connect to {s.host}:{s.port}: {exc}"))
            raise MqttError(f"cannot connect to {s.host}:{s.port}: {exc}") from None
        self._misc = self._loop.create_task(self._misc_loop(), name=f"listend[{self.name}:misc]")
        try:
            await self._wait(self._connected, "CONNACK")
        except MqttError as exc:
            self._teardown(exc)
            raise
        self._up = True

    def publish_nowait(
        self, topic: str, payload: str | bytes, *, qos: int, retain: bool = False
    ) -> asyncio.Future[None] | None:
        """Send one message; for QoS 1/2 return a future completed by PUBACK/PUBCOMP.

        QoS 0 returns None: there is nothing to wait for.
        """
        if self.closed.done():
            raise MqttError("not connected")
        self._writing = True  # paho's register_write callback: _write_now does it, if need be
        try:
            info = self._client.publish(topic, payload, qos=qos, retain=retain)
        finally:
            self._writing = False
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise MqttError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        self._write_now()
        if self.closed.done():  # the write found the connection broken
            raise MqttError(f"publish to {topic} failed: connection lost")
        if qos == 0:
            return None
        waiter: asyncio.Future[None] = self._loop.create_future()
        if info.is_published():  # acknowledged before we looked (cannot happen on one thread)
            waiter.set_result(None)
        else:
            self._pending[info.mid] = waiter
        return waiter

    def _write_now(self) -> None:
        """Write what paho queued; leave the rest (a full socket buffer) to a writer callback."""
        client = self._client
        self._writing = True
        try:
            client.loop_write()
        except Exception as exc:  # a broken socket (e.g. TLS error): the session is over
            self._teardown(MqttError(f"write failed: {exc}"))
            return
        finally:
            self._writing = False
        sock = client.socket()
        if client.want_write() and self._writer is None and sock is not None:
            self._register_writer(client, sock)

    async def wait_acks(self, waiters: list[asyncio.Future[None]]) -> None:
        """Wait until every publish in ``waiters`` is acknowledged, or raise MqttError."""
        try:
            if waiters:
                await self._wait(asyncio.gather(*waiters), "PUBACK")
        finally:
            for mid in [m for m, f in self._pending.items() if f in waiters]:
                del self._pending[mid]

    async def publish(
        self, topic: str, payload: str | bytes, *, qos: int, retain: bool = False
    ) -> None:
        waiter = self.publish_nowait(topic, payload, qos=qos, retain=retain)
        await self.wait_acks([waiter] if waiter is not None else [])

    async def subscribe(self, topic: str, qos: int = 0) -> None:
        rc, mid = self._client.subscribe(topic, qos)
        if rc != paho.MQTT_ERR_SUCCESS or mid is None:
            raise MqttError(f"subscribe to {topic} failed: {paho.error_string(rc)}")
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._pending[mid] = waiter
        try:
            await self._wait(waiter, "SUBACK")
        finally:
            self._pending.pop(mid, None)

    async def disconnect(self) -> None:
        """Say goodbye (no Last Will is published), then release everything."""
        if self.closed.done():
            return
        if self._client.disconnect() == paho.MQTT_ERR_SUCCESS:
            await asyncio.wait([self.closed], timeout=self.settings.timeout)
        self._teardown(None)
        if self._misc is not None:
            await cancel_and_wait(self._misc)

    def abort(self) -> None:
        """Drop the connection without a DISCONNECT (the broker will publish the Last Will)."""
        self._teardown(None)

    async def _wait(self, awaitable: asyncio.Future[Any], what: str) -> Any:
        """Wait for ``awaitable``, the end of the connection, or the timeout."""
        guard = asyncio.ensure_future(awaitable)
        done, _ = await asyncio.wait(
            (guard, self.closed), timeout=self.settings.timeout, return_when="FIRST_COMPLETED"
        )
        if guard in done:
            return guard.result()
        guard.cancel()
        if self.closed.done():
            exc = self.closed.exception()
            raise MqttError(f"connection lost while waiting for {what}: {exc or 'closed'}")
        raise MqttError(f"no {what} from the broker within {self.settings.timeout:g} s")

    async def _misc_loop(self) -> None:
        """Keepalive pings and ping timeouts (paho's loop_misc) while the socket is open.

        Both are due in units of ``keepalive`` (60 s by default), so looking every tenth of it
        is in time (the broker allows 1.5 keepalives of silence) without waking an idle
        daemon every second for nothing."""
        period = max(1.0, self.settings.keepalive / MISC_CHECKS_PER_KEEPALIVE)
        while not self.closed.done():
            if self._client.loop_misc() != paho.MQTT_ERR_SUCCESS:
                self._teardown(MqttError("keepalive timeout"))
                return
            await asyncio.sleep(period)

    def _teardown(self, error: MqttError | None) -> None:
        """End the connection: unregister the socket, fail every waiter, complete ``closed``."""
        for fd in list(self._fds):
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
        self._fds.clear()
        self._writer = None
        sock = self._client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(error or MqttError("connection closed"))
                waiter.exception()  # retrieved: whoever waits gets it through _wait anyway
        self._pending.clear()
        if not self._connected.done():
            self._connected.set_exception(error or MqttError("connection closed"))
            self._connected.exception()
        if not self.closed.done():
            if error is None:
                self.closed.set_result(None)
            else:
                self.closed.set_exception(error)
                self.closed.exception()
        if self._misc is not None and asyncio.current_task() is not self._misc:
            self._misc.cancel()

    # -- paho callbacks ----------------------------------------------------------------------

    def _soon(self, func: Callable[..., object], *args: Any) -> None:
        """Run ``func`` on the loop: directly on the loop thread, threadsafe from elsewhere."""
        if threading.get_ident() == self._loop_thread:
            func(*args)
        else:
            self._loop.call_soon_threadsafe(func, *args)

    def _on_connect(
        self,
        _client: paho.Client,
        _userdata: Any,
        _flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Any = None,
    ) -> None:
        if self._connected.done():
            return
        if reason_code.is_failure:
            self._connected.set_exception(
                MqttError(f"broker refused the connection: {reason_code}")
            )
        else:
            self._connected.set_result(None)

    def _on_disconnect(
        self,
        _client: paho.Client,
        _userdata: Any,
        _flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        _properties: Any = None,
    ) -> None:
        error = MqttError(f"disconnected: {reason_code}") if reason_code.is_failure else None
        self._soon(self._teardown, error)

    def _on_publish(
        self,
        _client: paho.Client,
        _userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        _properties: Any = None,
    ) -> None:
        waiter = self._pending.pop(mid, None)
        if waiter is None or waiter.done():
            return
        if reason_code.is_failure:
            waiter.set_exception(MqttError(f"broker rejected the message: {reason_code}"))
        else:
            waiter.set_result(None)

    def _on_subscribe(
        self,
        _client: paho.Client,
        _userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        _properties: Any = None,
    ) -> None:
        waiter = self._pending.pop(mid, None)
        if waiter is None or waiter.done():
            return
        if any(code.is_failure for code in reason_codes):
            waiter.set_exception(MqttError(f"subscription refused: {reason_codes}"))
        else:
            waiter.set_result(None)

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        if self._on_message_cb is not None:
            self._on_message_cb(message.topic, bytes(message.payload))

    def _on_socket_open(self, client: paho.Client, _userdata: Any, sock: Any) -> None:
        def readable() -> None:
            try:
                client.loop_read()
            except Exception as exc:  # a broken socket (e.g. TLS error): the session is over
                self._teardown(MqttError(f"read failed: {exc}"))
                return
            quick_ack(sock)

        # Each PUBLISH is a small write: without TCP_NODELAY, Nagle holds the next one until the
        # broker ACKs the last, and with delayed ACKs that is 40 ms per round.
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        quick_ack(sock)
        fd = sock.fileno()
        self._soon(self._add_reader, fd, readable)

    def _add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        if not self.closed.done():
            self._fds.add(fd)
            self._loop.add_reader(fd, callback)

    def _on_socket_close(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        fd = sock.fileno()
        if fd >= 0:
            self._soon(self._remove_fd, fd)

    def _remove_fd(self, fd: int) -> None:
        if fd in self._fds:
            self._fds.discard(fd)
            self._writer = None
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)

    def _on_socket_register_write(self, client: paho.Client, _userdata: Any, sock: Any) -> None:
        if self._writing and threading.get_ident() == self._loop_thread:
            return  # publish_nowait writes right away, and registers if the socket is full
        self._register_writer(client, sock)

    def _register_writer(self, client: paho.Client, sock: Any) -> None:
        def writable() -> None:
            try:
                client.loop_write()
            except Exception as exc:
                self._teardown(MqttError(f"write failed: {exc}"))

        self._soon(self._add_writer, sock.fileno(), writable)

    def _add_writer(self, fd: int, callback: Callable[[], None]) -> None:
        if not self.closed.done():
            self._fds.add(fd)
            self._writer = callback
            self._loop.add_writer(fd, callback)

    def _on_socket_unregister_write(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        fd = sock.fileno()
        if fd >= 0:
            self._soon(self._remove_writer, fd)

    def _remove_writer(self, fd: int) -> None:
        if fd in self._fds and self._writer is not None:  # never touch an fd number the loop
            self._writer = None  # may have given to someone else
            self._loop.remove_writer(fd)


def quick_ack(sock: Any) -> None:
    """ACK what the broker sent at once. A broker without TCP_NODELAY (mosquitto's default)
    holds each PUBACK until the previous one is ACKed; Linux delays that ACK up to 40 ms, so a
    batch of QoS 1 messages would be confirmed one per 40 ms. The flag does not stick: it is
    set again after every read."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
