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

from aiohttp import WSMessage, WSMsgType, web

from listend.daemon.tasks import cancel_and_wait
from listend.dgproto import messages
from listend.dgproto.channels import SAMPLE_WIDTH, ChannelRecognizers, Tagged
from listend.dgproto.hooks import Rejection, ServerHooks
from listend.dgproto.params import BadRequest, parse_params
from listend.dgproto.recognizer import (
    Recognizer,
    StreamParams,
    UnsupportedParams,
)
from listend.dgproto.records import ConnectionRecord, Credentials, Refusal

__all__ = [
    "ConnectionRecord",
    "Credentials",
    "DeepgramProtocolServer",
    "RecognizerFactory",
    "Refusal",
    "Rejection",
    "ServerHooks",
    "serve",
]

log = logging.getLogger(__name__)

RecognizerFactory = Callable[[StreamParams], Recognizer]
REQUEST_ID = web.RequestKey("dg_request_id", str)
MAX_MESSAGE = 1 << 20  # what Deepgram's SDK itself allows per message
ABORTED = 1006  # the close code a client sees when the TCP connection just ends


class DeepgramProtocolServer:
    """The aiohttp app; :attr:`hooks` (replaceable) decide what is recorded or injected."""

    def __init__(
        self,
        recognizer_factory: RecognizerFactory,
        *,
        credentials: Credentials | None = None,
        idle_timeout: float = 10.0,
        models: Collection[str] | None = None,
        hooks: ServerHooks | None = None,
    ) -> None:
        self.recognizer_factory = recognizer_factory
        self.credentials = credentials or Credentials()
        self.idle_timeout = idle_timeout
        self.models = frozenset(models) if models is not None else None
        self.hooks = hooks or ServerHooks()
        self._active: set[_Connection] = set()
        self._count = 0
        self.app = web.Application(middlewares=[_request_id_middleware])
        self.app.on_response_prepare.append(_add_request_id)
        self.app.on_shutdown.append(self._on_shutdown)
        self.app.router.add_get("/v1/listen", self.handle_listen)

    async def handle_listen(self, request: web.Request) -> web.StreamResponse:
        request_id: str = request[REQUEST_ID]
        rejection = self.hooks.rejection(request)
        if rejection is not None:
            return self._refuse(request, rejection)
        if not self.credentials.allows(request):
            return self._refuse(request, Rejection(401, "INVALID_AUTH", "Invalid credentials."))
        ws = web.WebSocketResponse(protocols=("token", "bearer"), max_msg_size=MAX_MESSAGE)
        if not ws.can_prepare(request).ok:
            rejection = Rejection(400, "Bad Request", "Expected a WebSocket upgrade.")
            return self._refuse(request, rejection)
        query = {key: request.query.getall(key) for key in request.query}
        try:
            params = parse_params(query, models=self.models)
            recognizer = ChannelRecognizers(self.recognizer_factory, params)
        except (BadRequest, UnsupportedParams) as exc:
            return self._refuse(request, Rejection(400, "Bad Request", str(exc)))
        self._count += 1
        await ws.prepare(request)
        record = self.hooks.open(request, self._count, request_id, params)
        connection = _Connection(self, request, ws, recognizer, record)
        self._active.add(connection)
        try:
            await connection.run()
        finally:
            self._active.discard(connection)
            record.closed.set()
            await recognizer.aclose()
        return ws

    def _refuse(self, request: web.Request, rejection: Rejection) -> web.Response:
        request_id: str = request[REQUEST_ID]
        status, err_code, message = rejection.status, rejection.err_code, rejection.message
        self.hooks.refused(Refusal(status, err_code, message, request_id))
        log.info("refused %s with %d %s: %s", request.path_qs, status, err_code, message)
        return web.json_response(
            messages.error_body(err_code, message, request_id),
            status=status,
            headers={"dg-error": message, **rejection.headers},
        )

    async def close_all(self, code: int = 1011, reason: str = "NET-0000") -> None:
        """Close every live connection now with ``code``."""
        await asyncio.gather(*(c.close(code, reason) for c in list(self._active)))

    def abort_all(self) -> None:
        """Drop every live connection without a close frame (the clients see 1006)."""
        for connection in list(self._active):
            connection.abort()

    async def _on_shutdown(self, _app: web.Application) -> None:
        await self.close_all(1001, "server shutting down")


#: Messages read ahead of the recognizer. A reader task keeps receiving (which is also what
#: answers the client's WebSocket pings) while a slow recognizer call (a Whisper decode) runs;
#: a client that floods the socket (a replay) is not dropped for a ping timeout meanwhile.
INBOX_LIMIT = 4096


class _Connection:
    """One accepted stream: the receive loop and the recognizer calls (a :class:`Stream`)."""

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
        self.ended = False

    async def run(self) -> None:
        inbox: asyncio.Queue[WSMessage] = asyncio.Queue(INBOX_LIMIT)
        reader = asyncio.create_task(
            self._read(inbox), name=f"listend[dgproto-read:{self.record.request_id}]"
        )
        try:
            await self._process(inbox)
        finally:
            await cancel_and_wait(reader)

    async def _read(self, inbox: asyncio.Queue[WSMessage]) -> None:
        while True:
            msg = await self.ws.receive()
            await inbox.put(msg)
            if msg.type not in {WSMsgType.BINARY, WSMsgType.TEXT}:
                return

    async def _process(self, inbox: asyncio.Queue[WSMessage]) -> None:
        last_activity = time.monotonic()
        while not self.ended:
            now = time.monotonic()
            timeout = self.server.idle_timeout - (now - last_activity)
            hook_at = self.record.deadline()
            if hook_at is not None:
                timeout = min(timeout, hook_at - now)
            if timeout <= 0:
                if hook_at is not None and hook_at <= now:
                    await self.record.on_deadline(self)
                    last_activity = time.monotonic()
                    continue
                if inbox.empty():  # read but not yet processed is not idle
                    await self.close(1011, messages.IDLE_CLOSE_REASON)
                    return
                msg = inbox.get_nowait()
            else:
                try:
                    msg = await asyncio.wait_for(inbox.get(), timeout)
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

    async def _on_audio(self, data: bytes) -> None:
        if not data:  # an empty frame is Deepgram's old close signal
            await self._close_stream()
            return
        record = self.record
        record.frames += 1
        record.bytes_received += len(data)
        self.sha256.update(data)
        await self._send(await self.recognizer.feed(data))
        await record.on_audio(self, data)

    async def _on_text(self, data: str) -> None:
        try:
            kind = str(json.loads(data).get("type"))
        except (ValueError, AttributeError):
            kind = "invalid"
        self.record.on_control(kind, data)
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
        await self.close(1000, "")

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
        try:
            await self.ws.send_str(messages.dumps(message))
        except ConnectionError:
            self._closed_by_client()
            return
        self.record.on_sent(message)

    def abort(self) -> None:
        if self.ended:
            return
        self._mark_closed(ABORTED, "aborted", "server")
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    async def close(self, code: int, reason: str) -> None:
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
