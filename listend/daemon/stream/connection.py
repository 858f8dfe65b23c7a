"""One WebSocket of a stream session: send the buffer, receive results.

The session decides when to connect and where the audio starts, and hands the connection a
:class:`SessionLink`: the few things of the session it uses, named. A :class:`StreamConnection`
runs two tasks on the open socket (send, receive) until it closes. KeepAlive is
:mod:`keepalive`'s job, the Finalize/CloseStream end :mod:`finalize`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from deepgram.listen.v1.socket_client import AsyncV1SocketClient
from deepgram.listen.v1.types import (
    ListenV1Metadata,
    ListenV1Results,
    ListenV1SpeechStarted,
    ListenV1UtteranceEnd,
)
from pydantic import BaseModel
from websockets.exceptions import ConnectionClosed
from websockets.extensions import Extension
from websockets.frames import Frame

from listend.daemon.events import AnyEvent
from listend.daemon.stream.deepgram import StreamError
from listend.daemon.stream.finalize import CloseHandshake, finalize_and_close
from listend.daemon.stream.keepalive import LastSent, keep_alive
from listend.daemon.stream.replay import ReplayBuffer
from listend.daemon.stream.results import EventFactory
from listend.daemon.stream.stats import SessionStats

log = logging.getLogger(__name__)

MAX_FRAME_SECONDS = 0.5  # largest audio message (Deepgram's SDK caps messages at 1 MiB)
#: How far short of its Finalize a from_finalize final may end and still cover all sent before
#: it: servers report times in milliseconds, a few samples short of the bytes sent.
FINALIZE_SLACK_SECONDS = 0.02
REPLAY_BURST_SECONDS = 2.0  # a backlog's first seconds go at once, then catchup_speed applies
MAX_LATENCIES = 1000
#: Deepgram's message types, parsed with the SDK's own models.
MESSAGE_MODELS: dict[str, type[BaseModel]] = {
    "Results": ListenV1Results,
    "UtteranceEnd": ListenV1UtteranceEnd,
    "SpeechStarted": ListenV1SpeechStarted,
    "Metadata": ListenV1Metadata,
}


class UncompressedSends(Extension):
    """permessage-deflate for what Deepgram sends, none for what we send.

    Deflating PCM costs more CPU per stream than anything else on the send path and saves
    little (audio is noise to zlib), and the compressor's window is memory per connection.
    RFC 7692 lets an endpoint send any message uncompressed (RSV1 clear) after negotiating it.
    """

    def __init__(self, negotiated: Extension) -> None:
        self.negotiated = negotiated
        self.name = negotiated.name

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        return self.negotiated.decode(frame, max_size=max_size)

    def encode(self, frame: Frame) -> Frame:
        return frame


def send_uncompressed(ws: Any) -> None:
    """Keep decoding compressed messages on ``ws`` but send ours as they are."""
    extensions = getattr(ws, "extensions", None)
    if extensions:
        ws.extensions = [
            UncompressedSends(e) if e.name == "permessage-deflate" else e for e in extensions
        ]


@dataclass(frozen=True)
class SessionLink:
    """What a connection uses of its stream session, and nothing more."""

    source: str  # the source's name, for logs and task names
    buffer: ReplayBuffer
    stats: SessionStats
    factory: EventFactory
    emit: Callable[[AnyEvent | None], Awaitable[None]]
    keepalive_interval: float
    finalize_timeout: float
    catchup_speed: float  # a backlog goes at most this much faster than real time (0: no limit)
    stopping: Callable[[], bool]  # ... unless the session is stopping
    answered: Callable[[], None]  # the connection proved healthy: results for its audio came
    wants_interims: bool  # whether any sink receives interim results


class StreamConnection:
    """Audio from byte offset ``start`` of the source goes out on ``sock``."""

    def __init__(
        self,
        sock: AsyncV1SocketClient,
        ws: Any,
        *,
        start: int,
        request_id: str | None,
        link: SessionLink,
    ) -> None:
        self.sock = sock
        self.ws = ws  # the SDK's underlying websockets protocol: close code, close()
        self.start = start
        self.sent = start
        self.request_id = request_id
        self.link = link
        self.name = link.source
        self.buffer = link.buffer
        self.stats = link.stats
        self.opened = time.monotonic()
        self.last_sent = LastSent()  # when audio or a control message last went out
        send_uncompressed(ws)
        self.handoff = asyncio.Event()  # end cleanly now: the session switches engines
        self._cut_tail = False  # after a handoff: results past the engine's last endpoint
        self.handshake = CloseHandshake()
        self._finalized_at: deque[int] = deque()  # offsets sent before each Finalize

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
        tag = f"listend[source:{self.name}]"
        with contextlib.suppress(ConnectionClosed):
            helpers = [
                asyncio.create_task(
                    keep_alive(self.sock, self.last_sent, self.link.keepalive_interval, self.stats),
                    name=f"{tag}.keepalive",
                ),
                asyncio.create_task(self._wake_on_handoff(), name=f"{tag}.handoff"),
            ]
            try:
                await self._send_audio()
            finally:
                for task in helpers:
                    task.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
            await finalize_and_close(
                self._send_finalize,
                self.sock,
                self.ws,
                self.handshake,
                seconds=self.link.finalize_timeout,
                source=self.name,
            )

    async def _send_finalize(self) -> None:
        self._finalized_at.append(self.sent)
        await self.sock.send_finalize()

    def _through_finalize(self, covered: int) -> int:
        """A from_finalize final covers all audio sent before its Finalize, though its reported
        end may fall a few samples short of it; without this the next connection would start
        those samples early and transcribe them twice."""
        slack = self.buffer.to_bytes(FINALIZE_SLACK_SECONDS)
        while self._finalized_at and self._finalized_at[0] <= covered + slack:
            covered = max(covered, self._finalized_at.popleft())
        return min(covered, self.sent)

    async def _wake_on_handoff(self) -> None:
        """The sender waits for audio without a timeout: wake it when the session switches
        engines, so it ends this connection cleanly."""
        await self.handoff.wait()
        self.buffer.wake()

    async def _send_audio(self) -> None:
        """Stream the buffer until the source has ended.

        Where the voice gate closed, Finalize: the words before it become finals now rather
        than when speech resumes, and the buffer can free them. So too when all of a full
        buffer is sent and its source (not live: a file, the spool) waits for room.
        """
        buffer, sock = self.buffer, self.sock
        max_frame = buffer.to_bytes(MAX_FRAME_SECONDS)
        paused_through = self.start  # gate closes up to here are handled
        while not self.handoff.is_set():
            if self.sent < buffer.start:
                msg = "the connection fell behind by more than the replay buffer"
                raise StreamError(msg, retry=True)
            limit = max_frame
            if buffer.pauses and (pause := buffer.next_pause(paused_through)) is not None:
                if pause <= self.sent:
                    await self._send_finalize()
                    paused_through = pause
                    self.last_sent.touch()
                    continue
                limit = min(limit, pause - self.sent)
            chunk = buffer.read(self.sent, limit)
            if chunk:
                await self._pace()
                await sock.send_media(chunk)
                self.sent += len(chunk)
                self.stats.audio_seconds_sent += buffer.to_seconds(len(chunk))
                self.last_sent.touch()
                continue
            if buffer.ended:
                return
            if buffer.waiting_for_room and (
                not self._finalized_at or self._finalized_at[-1] < self.sent
            ):
                await self._send_finalize()  # all of a full buffer is sent: finals free it
            await buffer.wait_for_data(self.sent)

    async def _pace(self) -> None:
        """Send a backlog at most ``catchup_speed`` x real time (not when stopping). Live audio
        comes slower than that: once caught up, the buffer's pace is the source's."""
        speed = self.link.catchup_speed
        if speed <= 0 or self.link.stopping():
            return
        sent = self.buffer.to_seconds(self.sent - self.start) - REPLAY_BURST_SECONDS
        ahead = sent / speed - (time.monotonic() - self.opened)
        if ahead > 0:
            await asyncio.sleep(ahead)

    # -- receiving ------------------------------------------------------------------------

    async def _receive(self) -> None:
        """Read the socket's messages. Not through the SDK's iterator: it resolves every
        message against a union of all its types (a pydantic TypeAdapter built per message),
        the largest CPU cost per stream; the type field says which SDK model to use."""
        interims = self.link.wants_interims
        answered = False
        try:
            async for raw in self.ws:
                if isinstance(raw, bytes):
                    continue
                try:
                    data = json.loads(raw)
                    kind = data.get("type")
                    if kind == "Results" and not answered and self.sent > self.start:
                        answered = True  # Deepgram transcribes what we send: not flapping
                        self.link.answered()
                    if kind == "Results" and not interims and not data.get("is_final"):
                        continue  # no sink receives interim results: nothing to build
                    model = MESSAGE_MODELS.get(kind)
                    if model is None:
                        log.warning("source %s: unexpected message: %.200s", self.name, raw)
                        continue
                    await self._on_message(model.model_validate(data))
                except (ValueError, AttributeError, TypeError, IndexError) as exc:
                    log.warning("source %s: ignoring malformed message: %s", self.name, exc)
        except ConnectionClosed:
            pass  # the close code is read below, whoever closed
        finally:
            self.handshake.record_close(self.ws)

    def _past_last_endpoint(self, message: ListenV1Results) -> bool:
        """After a handoff, the first final that does not end at an endpoint (the Finalize's,
        a monologue's cut) and all after it are dropped: the next engine resumes at the last
        endpoint, so a word the handoff cut in two is heard whole there, not half by each."""
        if self.handoff.is_set() and message.is_final:
            self._cut_tail |= bool(message.from_finalize or not message.speech_final)
        return self._cut_tail

    async def _on_message(self, message: object) -> None:
        factory, emit = self.link.factory, self.link.emit
        if isinstance(message, ListenV1Results):
            await self._on_results(message)
        elif isinstance(message, ListenV1UtteranceEnd):
            await emit(factory.utterance_end(message))
        elif isinstance(message, ListenV1SpeechStarted):
            await emit(factory.speech_started(message))
        elif isinstance(message, ListenV1Metadata):
            await emit(factory.metadata(message))

    async def _on_results(self, message: ListenV1Results) -> None:
        factory = self.link.factory
        if self._past_last_endpoint(message):
            if message.from_finalize:
                self.handshake.finalized.set()
            return
        event = factory.transcript(message)
        if message.is_final:
            covered = min(self.buffer.stream_offset(factory.covered), self.sent)
            if message.from_finalize:
                covered = self._through_finalize(covered)
            captured = await self.buffer.cover(covered)
            if event is not None:
                self._count_final(captured)
            if message.from_finalize:
                self.handshake.finalized.set()
        await self.link.emit(event)

    def _count_final(self, captured: float | None) -> None:
        stats = self.stats
        now = time.monotonic()
        stats.finals += 1
        stats.last_final_at = now
        if captured is not None:
            stats.final_latencies.append(now - captured)
            del stats.final_latencies[:-MAX_LATENCIES]
