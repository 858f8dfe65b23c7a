"""Deepgram's streaming endpoint (``GET /v1/listen``, WebSocket) as an aiohttp application.

The server owns the wire: handshake, Token/Bearer auth, query validation, ``dg-request-id`` on
every response, the idle timeout (1011 NET-0001), KeepAlive, Finalize, CloseStream -> finals,
Metadata, close 1000. A :class:`~listend.dgproto.recognizer.Recognizer` made per connection by
the factory owns the words. Other routes (the local engine's ``POST /v1/listen``) are added to
:attr:`DeepgramProtocolServer.app` by their owners.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import WSMsgType, web

from listend.dgproto import messages
from listend.dgproto.channels import SAMPLE_WIDTH, ChannelRecognizers, Tagged
from listend.dgproto.faults import ABRUPT, Drop, FaultPlan, Refuse, Stall
from listend.dgproto.params import BadRequest, parse_params
from listend.dgproto.recognizer import (
    Recognizer,
    StreamParams,
    UnsupportedParams,
)
from listend.dgproto.records import (
    ConnectionRecord,
    ControlMessage,
    Credentials,
    Refusal,
)

__all__ = [
    "ConnectionRecord",
    "ControlMessage",
    "Credentials",
    "DeepgramProtocolServer",
    "RecognizerFactory",
    "Refusal",
    "serve",
]

log = logging.getLogger(__name__)

RecognizerFactory = Callable[[StreamParams], Recognizer]
REQUEST_ID = web.RequestKey("dg_request_id", str)
MAX_MESSAGE = 1 << 20  # what Deepgram's SDK itself allows per message


class DeepgramProtocolServer:
    """The aiohttp app plus what tests inspect: :attr:`connections`, :attr:`refusals`."""

    def __init__(
        self,
        recognizer_factory: RecognizerFactory,
        *,
        credentials: Credentials | None = None,
        idle_timeout: float = 10.0,
        models: Collection[str] | None = None,
        faults: FaultPlan | None = None,
        record: bool = False,
    ) -> None:
        self.recognizer_factory = recognizer_factory
        self.credentials = credentials or Credentials()
        self.idle_timeout = idle_timeout
        self.models = frozenset(models) if models is not None else None
        self.faults = faults or FaultPlan()
        self.record = record
        self.connections: list[ConnectionRecord] = []
        self.refusals: list[Refusal] = []
        self.connection_opened = asyncio.Condition()
        self._active: set[_Connection] = set()
        self._count = 0
        self.app = web.Application(middlewares=[_request_id_middleware])
        self.app.on_response_prepare.append(_add_request_id)
        self.app.on_shutdown.append(self._on_shutdown)
        self.app.router.add_get("/v1/listen", self.handle_listen)

    async def handle_listen(self, request: web.Request) -> web.StreamResponse:
        request_id: str = request[REQUEST_ID]
        step = self.faults.next_step()
        if isinstance(step, Refuse):
            headers = {}
            if step.retry_after is not None:
                headers["Retry-After"] = f"{step.retry_after:g}"
            return self._refuse(request, step.status, step.err_code, step.message, headers)
        if not self.credentials.allows(request):
            return self._refuse(request, 401, "INVALID_AUTH", "Invalid credentials.")
        ws = web.WebSocketResponse(protocols=("token", "bearer"), max_msg_size=MAX_MESSAGE)
        if not ws.can_prepare(request).ok:
            return self._refuse(request, 400, "Bad Request", "Expected a WebSocket upgrade.")
        query = {key: request.query.getall(key) for key in request.query}
        try:
            params = parse_params(query, models=self.models)
            recognizer = ChannelRecognizers(self.recognizer_factory, params)
        except (BadRequest, UnsupportedParams) as exc:
            return self._refuse(request, 400, "Bad Request", str(exc))
        self._count += 1
        record = ConnectionRecord(
            index=self._count,
            request_id=request_id,
            params=params,
            query=list(request.query.items()),
            authorization=request.headers.get("Authorization"),
            fault=step,
        )
        await ws.prepare(request)
        if self.record:
            self.connections.append(record)
        async with self.connection_opened:
            self.connection_opened.notify_all()
        connection = _Connection(self, request, ws, recognizer, record)
        self._active.add(connection)
        try:
            await connection.run()
        finally:
            self._active.discard(connection)
            record.closed.set()
            await recognizer.aclose()
        return ws

    def _refuse(
        self,
        request: web.Request,
        status: int,
        err_code: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        request_id: str = request[REQUEST_ID]
        self.refusals.append(Refusal(status, err_code, message, request_id))
        log.info("refused %s with %d %s: %s", request.path_qs, status, err_code, message)
        return web.json_response(
            messages.error_body(err_code, message, request_id),
            status=status,
            headers={"dg-error": message, **(headers or {})},
        )

    async def drop_all(self, code: int = 1011, reason: str = "NET-0000") -> None:
        """Close every live connection now (1006: abort without a close frame)."""
        await asyncio.gather(*(c.drop(code, reason) for c in list(self._active)))

    async def _on_shutdown(self, _app: web.Application) -> None:
        await self.drop_all(1001, "server shutting down")

    async def wait_for_connections(self, count: int) -> None:
        """Wait until ``count`` connections have been accepted in total."""
        async with self.connection_opened:
            await self.connection_opened.wait_for(lambda: self._count >= count)


class _Connection:
    """One accepted stream: the receive loop, the recognizer calls, the planned fault."""

    def __init__(
        self,
        server: DeepgramProtocolServer,
        request: web.Request,
        ws: web.WebSocketResponse,
        recognizer: ChannelRecognizers,
        record: ConnectionRecord,
    ) -> None:
        self.server = server
        self.request = request
        self.ws = ws
        self.recognizer = recognizer
        self.record = record
        self.params = record.params
        self.model_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, recognizer.info.name))
        self.sha256 = hashlib.sha256()
        self.created = datetime.now(UTC)
        self.fault = record.fault
        self.ended = False

    async def run(self) -> None:
        last_activity = time.monotonic()
        while not self.ended:
            now = time.monotonic()
            timeout = self.server.idle_timeout - (now - last_activity)
            fault_at = self._fault_deadline()
            if fault_at is not None:
                timeout = min(timeout, fault_at - now)
            if timeout <= 0:
                if fault_at is not None and fault_at <= now:
                    await self._fire_fault()
                    last_activity = time.monotonic()
                    continue
                await self._close(1011, messages.IDLE_CLOSE_REASON)
                return
            try:
                msg = await self.ws.receive(timeout=timeout)
            except TimeoutError:
                continue
            if msg.type is WSMsgType.BINARY:
                last_activity = time.monotonic()
                await self._on_audio(msg.data)
            elif msg.type is WSMsgType.TEXT:
                last_activity = time.monotonic()
                await self._on_text(msg.data)
            else:  # CLOSE, CLOSING, CLOSED, ERROR: the client went away
                self._closed_by_client()
                return

    def _fault_deadline(self) -> float | None:
        fault = self.fault
        if fault is None or fault.after_seconds is None:
            return None
        return self.record.opened_at + fault.after_seconds

    async def _on_audio(self, data: bytes) -> None:
        if not data:  # an empty frame is Deepgram's old close signal
            await self._close_stream()
            return
        record = self.record
        record.frames += 1
        record.bytes_received += len(data)
        if self.server.record:
            record.audio += data
        self.sha256.update(data)
        await self._send(await self.recognizer.feed(data))
        fault = self.fault
        if (
            fault is not None
            and fault.after_bytes is not None
            and record.bytes_received >= fault.after_bytes
        ):
            await self._fire_fault()

    async def _on_text(self, data: str) -> None:
        try:
            kind = str(json.loads(data).get("type"))
        except (ValueError, AttributeError):
            kind = "invalid"
        self.record.controls.append(
            ControlMessage(
                kind, self.record.bytes_received, time.monotonic() - self.record.opened_at, data
            )
        )
        if kind == "KeepAlive":
            return
        if kind == "Finalize":
            await self._send(await self.recognizer.finalize())
        elif kind == "CloseStream":
            await self._close_stream()
        else:
            log.warning("connection %s: ignoring message %r", self.record.request_id, data[:200])

    async def _close_stream(self) -> None:
        await self._send(await self.recognizer.close())
        width = SAMPLE_WIDTH.get(self.params.encoding)
        rate = self.params.sample_rate * self.params.channels * (width or 0)
        meta = messages.metadata(
            request_id=self.record.request_id,
            sha256=self.sha256.hexdigest(),
            created=self.created,
            duration=self.record.bytes_received / rate if rate else 0.0,
            channels=self.params.channels,
            model_uuid=self.model_uuid,
            info=self.recognizer.info,
        )
        await self._send_json(meta)
        await self._close(1000, "")

    async def _send(self, outputs: Tagged) -> None:
        for channel, output in outputs:
            if messages.wanted(output, self.params):
                await self._send_json(
                    messages.encode(
                        output,
                        params=self.params,
                        request_id=self.record.request_id,
                        model_uuid=self.model_uuid,
                        info=self.recognizer.info,
                        channel=channel,
                    )
                )

    async def _send_json(self, message: dict[str, Any]) -> None:
        if self.ended or self.ws.closed:
            return
        if self.server.record:
            self.record.sent.append(message)
        try:
            await self.ws.send_str(messages.dumps(message))
        except ConnectionError:
            self._closed_by_client()

    async def _fire_fault(self) -> None:
        fault, self.fault = self.fault, None
        if isinstance(fault, Drop):
            log.info("connection %s: injected close %d", self.record.request_id, fault.code)
            await self.drop(fault.code, fault.reason)
        elif isinstance(fault, Stall):
            log.info("connection %s: injected stall %.1fs", self.record.request_id, fault.seconds)
            await asyncio.sleep(fault.seconds)

    async def drop(self, code: int, reason: str) -> None:
        if self.ended:
            return
        if code == ABRUPT:
            self._mark_closed(ABRUPT, "aborted", "server")
            transport = self.request.transport
            if transport is not None:
                transport.abort()
            return
        await self._close(code, reason)

    async def _close(self, code: int, reason: str) -> None:
        if self.ended:
            return
        self._mark_closed(code, reason, "server")
        with contextlib.suppress(ConnectionError):
            await self.ws.close(code=code, message=reason.encode()[:123])

    def _closed_by_client(self) -> None:
        if not self.ended:
            self._mark_closed(self.ws.close_code, "", "client")

    def _mark_closed(self, code: int | None, reason: str, by: Literal["client", "server"]) -> None:
        self.ended = True
        self.record.close_code = code
        self.record.close_reason = reason
        self.record.closed_by = by


@web.middleware
async def _request_id_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    request[REQUEST_ID] = str(uuid.uuid4())
    return await handler(request)


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("dg-request-id", request.get(REQUEST_ID) or str(uuid.uuid4()))


@asynccontextmanager
async def serve(
    app: web.Application, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[tuple[str, int]]:
    """Run ``app`` on ``host:port`` (0: a free port) until the block exits; yields the address."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        yield str(bound[0]), int(bound[1])
    finally:
        await runner.cleanup()
