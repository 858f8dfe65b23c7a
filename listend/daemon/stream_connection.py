"""One WebSocket of a stream session: send the buffer, receive results, flush at the end.

The session decides when to connect and where the audio starts; a :class:`StreamConnection`
runs two tasks on the open socket (send, receive) until it closes, and records how it ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from deepgram.listen.v1.socket_client import AsyncV1SocketClient
from deepgram.listen.v1.types import (
    ListenV1Metadata,
    ListenV1Results,
    ListenV1SpeechStarted,
    ListenV1UtteranceEnd,
)
from pydantic import ValidationError
from websockets.exceptions import ConnectionClosed

from listend.daemon.deepgram_connect import StreamError

if TYPE_CHECKING:
    from listend.daemon.session import StreamSession

log = logging.getLogger(__name__)

MAX_FRAME_SECONDS = 0.5  # largest audio message (Deepgram's SDK caps messages at 1 MiB)
REPLAY_SPEED = 1.25  # replay a backlog at most this much faster than real time (live sources)
REPLAY_BURST_SECONDS = 2.0  # ... after sending this much at once
MAX_LATENCIES = 1000


class StreamConnection:
    """Audio from byte offset ``start`` of the source goes out on ``sock``."""

    def __init__(
        self,
        sock: AsyncV1SocketClient,
        ws: Any,
        *,
        start: int,
        request_id: str | None,
        session: StreamSession,
    ) -> None:
        self.sock = sock
        self.ws = ws  # the SDK's underlying websockets protocol: close code, close()
        self.start = start
        self.sent = start
        self.request_id = request_id
        self.session = session
        self.name = session.name
        self.buffer = session.buffer
        self.stats = session.stats
        self.opened = time.monotonic()
        self.finalized = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_stream_sent = False
        self.close_code: int | None = None
        self.close_reason = ""

    async def run(self) -> None:
        """Until the socket closes; raises what the sender raised (e.g. fell behind)."""
        tag = f"listend[source:{self.name}]"
        receiver = asyncio.create_task(self._receive(), name=f"{tag}.receive")
        sender = asyncio.create_task(self._send(), name=f"{tag}.send")
        try:
            await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
            if not receiver.done():  # the sender failed or gave up: end the connection
                await self.ws.close()
                await asyncio.wait({receiver})
        finally:
            for task in (sender, receiver):
                task.cancel()
            await asyncio.wait({sender, receiver})
        for task in (receiver, sender):
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error

    # -- sending --------------------------------------------------------------------------

    async def _send(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._send_audio()
            await self._flush()

    async def _send_audio(self) -> None:
        """Stream the buffer until the source has ended; KeepAlive whenever it is quiet."""
        buffer, sock = self.buffer, self.sock
        interval = self.session.deepgram.keepalive_interval
        max_frame = buffer.to_bytes(MAX_FRAME_SECONDS)
        last_sent = time.monotonic()
        while True:
            if self.sent < buffer.start:
                msg = "the connection fell behind by more than the replay buffer"
                raise StreamError(msg, retry=True)
            chunk = buffer.read(self.sent, max_frame)
            if chunk:
                await self._pace()
                await sock.send_media(chunk)
                self.sent += len(chunk)
                self.stats.audio_seconds_sent += buffer.to_seconds(len(chunk))
                last_sent = time.monotonic()
                continue
            if buffer.ended:
                return
            quiet = time.monotonic() - last_sent
            if quiet >= interval:
                await sock.send_keep_alive()
                self.stats.keepalives += 1
                last_sent = time.monotonic()
                continue
            await buffer.wait_for_data(self.sent, interval - quiet)

    async def _pace(self) -> None:
        """Replay a live source's backlog at most REPLAY_SPEED x real time (not when stopping)."""
        if not self.session.live or self.session.stopping:
            return
        sent = self.buffer.to_seconds(self.sent - self.start) - REPLAY_BURST_SECONDS
        ahead = sent / REPLAY_SPEED - (time.monotonic() - self.opened)
        if ahead > 0:
            await asyncio.sleep(ahead)

    async def _flush(self) -> None:
        """Finalize -> the from_finalize final -> CloseStream -> the server's close."""
        timeout = self.session.deepgram.finalize_timeout
        await self.sock.send_finalize()
        try:
            async with asyncio.timeout(timeout):
                await self.finalized.wait()
        except TimeoutError:
            log.warning("source %s: no final for Finalize within %gs", self.name, timeout)
        await self.sock.send_close_stream()
        self.close_stream_sent = True
        try:
            async with asyncio.timeout(timeout):
                await self.closed.wait()
        except TimeoutError:
            log.warning("source %s: Deepgram did not close within %gs", self.name, timeout)
            await self.ws.close()

    # -- receiving ------------------------------------------------------------------------

    async def _receive(self) -> None:
        try:
            async for message in self.sock:
                try:
                    await self._on_message(message)
                except (ValidationError, AttributeError, TypeError, IndexError) as exc:
                    log.warning("source %s: ignoring malformed message: %s", self.name, exc)
        except ConnectionClosed:
            pass  # the close code is read below, whoever closed
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason or ""
            self.closed.set()

    async def _on_message(self, message: object) -> None:
        factory, emit = self.session.factory, self.session.emit
        if isinstance(message, ListenV1Results):
            event = factory.transcript(message)
            if message.is_final:
                covered = min(self.buffer.to_bytes(factory.covered), self.sent)
                captured = await self.buffer.cover(covered)
                if event is not None:
                    self._count_final(captured)
                if message.from_finalize:
                    self.finalized.set()
            await emit(event)
        elif isinstance(message, ListenV1UtteranceEnd):
            await emit(factory.utterance_end(message))
        elif isinstance(message, ListenV1SpeechStarted):
            await emit(factory.speech_started(message))
        elif isinstance(message, ListenV1Metadata):
            await emit(factory.metadata(message))
        elif not isinstance(message, bytes):
            log.warning("source %s: unexpected message from Deepgram: %r", self.name, message)

    def _count_final(self, captured: float | None) -> None:
        stats = self.stats
        now = time.monotonic()
        stats.finals += 1
        stats.last_final_at = now
        if captured is not None:
            stats.final_latencies.append(now - captured)
            del stats.final_latencies[:-MAX_LATENCIES]
