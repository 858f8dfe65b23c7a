"""The Wyoming server: one task per client connection, one stream session per request.

The ``wyoming`` package does the protocol (event framing, the event and info types); the
TCP server is ours, so every connection is a named task in our TaskGroup and a stop or a
client leaving cancels its session instead of leaving it behind (the package's server keeps
its handler tasks to itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass

from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import Describe, Info

from listend.daemon.config.models import WyomingConfig, split_listen
from listend.daemon.errors import ListendError
from listend.daemon.plugin.source import PluginContext
from listend.daemon.wyoming.advertise import advertise, advertised_address, service_info
from listend.daemon.wyoming.audio import RequestAudio, audio_format
from listend.daemon.wyoming.request import Request, SessionFactory

log = logging.getLogger(__name__)


@dataclass
class _Client:
    """One connection: the request in flight, and what ``transcribe`` asked for it."""

    n: int
    writer: asyncio.StreamWriter
    language: str | None = None
    request: Request | None = None

    async def send(self, event: Event) -> None:
        await async_write_event(event, self.writer)


class WyomingServer:
    def __init__(
        self,
        config: WyomingConfig,
        *,
        info: Info,
        make_session: SessionFactory,
        context: PluginContext,
        zeroconf_interfaces: list[str] | None = None,
    ) -> None:
        self.config = config
        self.info = info
        self.make_session = make_session
        self.context = context
        self.zeroconf_interfaces = zeroconf_interfaces
        self.host, self.port = split_listen(config.listen)
        self.serving = asyncio.Event()  # set once bound (``port`` is then the real one)
        self.requests: dict[str, Request] = {}  # in flight, by name
        self.served = 0
        self._ids = itertools.count(1)

    @property
    def service_name(self) -> str:
        return self.config.name or f"listend-{self.context.device}"

    async def run(self) -> None:
        """Serve until cancelled; then every connection and its session are ended."""
        server: asyncio.Server | None = None
        async with asyncio.TaskGroup() as group:

            def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                n = next(self._ids)
                group.create_task(self._connection(n, reader, writer), name=f"listend[wyoming:{n}]")

            try:
                server = await asyncio.start_server(accept, self.host, self.port)
            except OSError as exc:
                raise ListendError(
                    f"wyoming: cannot listen on {self.config.listen}: {exc}"
                ) from exc
            try:
                await self._serve(server)
            finally:
                server.close()  # no new clients; the group then cancels the connected ones
        await server.wait_closed()

    async def _serve(self, server: asyncio.Server) -> None:
        self.port = server.sockets[0].getsockname()[1]
        log.info("wyoming: serving speech-to-text on %s:%d", self.host, self.port)
        self.serving.set()  # clients by host and port need not wait for the announcement
        async with contextlib.AsyncExitStack() as stack:
            if self.config.zeroconf:
                address = advertised_address(self.host)
                record = service_info(self.service_name, address, self.port)
                await stack.enter_async_context(
                    advertise(record, interfaces=self.zeroconf_interfaces)
                )
            await asyncio.Future()  # until cancelled

    async def _connection(
        self, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        log.debug("wyoming: client %s connected", peer)
        client = _Client(n, writer)
        try:
            while (event := await async_read_event(reader)) is not None:
                await self._on_event(client, event)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.debug("wyoming: client %s went away: %s", peer, exc)
        except ListendError as exc:
            log.warning("wyoming: client %s: %s", peer, exc)
            with contextlib.suppress(ConnectionError):
                await client.send(Error(text=f"listend: {exc}").event())
        except Exception:
            log.exception("wyoming: client %s: unexpected error", peer)
        finally:
            if client.request is not None:
                log.info("wyoming: %s: client left mid-request; cancelling", client.request.name)
                await self._end(client.request)
            writer.close()
        log.debug("wyoming: client %s done", peer)

    async def _on_event(self, client: _Client, event: Event) -> None:
        request = client.request
        if Describe.is_type(event.type):
            await client.send(self.info.event())
        elif Transcribe.is_type(event.type):
            client.language = Transcribe.from_event(event).language
        elif AudioStart.is_type(event.type):
            if request is not None:  # a new request abandons the unfinished one
                await self._end(request)
            client.request = self._start(client, AudioStart.from_event(event))
            if client.request is None:
                await client.send(Error(text="listend: no engine to transcribe with").event())
        elif AudioChunk.is_type(event.type) and request is not None:
            await request.audio.put(AudioChunk.from_event(event).audio)
        elif AudioStop.is_type(event.type) and request is not None:
            try:
                await request.answer(self.config.answer_timeout)
            finally:
                self._forget(request)
            client.request, client.language = None, None

    def _start(self, client: _Client, start: AudioStart) -> Request | None:
        language = client.language
        fmt = audio_format(start.rate, start.width, start.channels)
        options = self.config.stream
        if language:  # else the configured (or Deepgram's default) language
            options = options.model_copy(update={"language": language})
        name = f"wyoming:{client.n}.{self.served + 1}"
        request = Request(
            self.make_session,
            name=name,
            audio=RequestAudio(name, fmt, self.context),
            options=options,
            language=language or self.config.languages[0],
            send=client.send,
        )
        if not request.transcribes:
            return None
        self.served += 1
        self.requests[name] = request
        request.start()
        return request

    async def _end(self, request: Request) -> None:
        try:
            await request.cancel()
        finally:
            self._forget(request)

    def _forget(self, request: Request) -> None:
        self.requests.pop(request.name, None)
