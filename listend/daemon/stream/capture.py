"""A stream session's two ends: audio in (capture), events out (publish, with acknowledgement).

:class:`Capture` reads the source (or a spooled run being recovered) into the replay buffer,
through the voice gate when the source has one. :class:`EventQueue` hands events to the router
from a bounded queue, so a slow sink never stalls the WebSocket; each final carries where the
audio it covers ends, and once the router reports the final committed to every outbox the
session frees that audio (the end-to-end acknowledgement).

A paused source is still read (a live device must be drained) but nothing is kept, so nothing
is sent to Deepgram or billed; the buffer marks the pause like a gate close, and audio after a
resume keeps its source offset, so event times stay in source time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from functools import partial

from listend.daemon.errors import ListendError
from listend.daemon.events import AnyEvent
from listend.daemon.plugin.source import Source
from listend.daemon.stream.replay import ReplayBuffer
from listend.daemon.stream.spool import SpoolRun
from listend.daemon.stream.stats import SessionStats
from listend.daemon.stream.triggers import PhraseTracker
from listend.daemon.stream.voice_gate import Passage, VoiceGate

log = logging.getLogger(__name__)

#: ``publish(event, on_commit)``: ``on_commit`` (finals only) is called once the event is
#: committed to every outbox it is routed to (:class:`~listend.daemon.delivery.router.Router`).
#: It may also have an ``offer`` (:data:`Offer`; the router's
#: :class:`~listend.daemon.delivery.router.Publisher` has), tried first.
Publish = Callable[[AnyEvent, Callable[[], None] | None], Awaitable[None]]
#: ``offer(event, on_commit)``: hand the event on now if that needs no waiting; False if not.
Offer = Callable[[AnyEvent, Callable[[], None] | None], bool]
EVENT_QUEUE_SIZE = 1000
RECOVERY_CHUNK_SECONDS = 0.1  # spooled audio goes into the replay buffer this much at a time


class Capture:
    def __init__(
        self,
        name: str,
        source: Source,
        buffer: ReplayBuffer,
        stats: SessionStats,
        *,
        recovering: SpoolRun | None,
    ) -> None:
        self.name = name
        self.source = source
        self.buffer = buffer
        self.stats = stats
        self.live = source.realtime and recovering is None  # not live: wait for room
        self.recovering = recovering
        vad = None if recovering is not None else source.vad  # spooled audio is gated already
        fmt = source.audio_format
        self.gate = VoiceGate(fmt, vad, name) if vad is not None and vad.enabled else None
        self.paused = False
        self.failure: ListendError | None = None  # why the source stopped, if it had to
        self._offset = 0  # source bytes read so far
        self._skipping = False  # the last chunk was dropped for a pause

    async def drain(self, stop: asyncio.Event) -> None:
        """No credentials and no local engine yet: read the source so the daemon still runs."""
        log.warning(
            "source %s: no Deepgram credentials and no local engine: not transcribed", self.name
        )
        self.stats.first_attempt.set()
        async for _chunk in self.source.stream():
            if stop.is_set():
                break

    async def run(self) -> None:
        if self.recovering is not None:
            await self._replay_spool(self.recovering)
            return
        stream = self.source.stream()
        gate = self.gate
        try:
            async for chunk in stream:
                if not chunk:
                    continue  # an empty frame would close Deepgram's stream
                self.stats.heard(self.buffer.to_seconds(len(chunk)))
                at = self._offset
                self._offset += len(chunk)
                passages = [Passage(at, chunk)] if gate is None else gate.feed(chunk)
                if self.paused:
                    await self._skip()
                    continue
                await self._keep_passages(passages)
        except ListendError as exc:
            log.error("source %s failed: %s", self.name, exc)  # noqa: TRY400 - a user error
            self.failure = exc
        finally:
            if isinstance(stream, AsyncGenerator):
                await stream.aclose()
            if gate is not None and not self.paused:
                await self._keep_passages(gate.flush())
            await self.buffer.finish()

    async def _replay_spool(self, run: SpoolRun) -> None:
        """A spooled run, in chunks a source would bring (a record may hold a whole outage:
        appended at once, it could overrun the replay buffer before it is sent)."""
        chunk = self.buffer.to_bytes(RECOVERY_CHUNK_SECONDS)
        async for records in run.read():
            for offset, audio in records:
                for at in range(0, len(audio), chunk):
                    await self._keep(audio[at : at + chunk], offset + at)
        await self.buffer.finish()

    async def _skip(self) -> None:
        if not self._skipping:
            self._skipping = True
            await self.buffer.pause()

    async def _keep(self, audio: bytes, at: int) -> None:
        """Into the replay buffer at source offset ``at`` (after a skip, the timeline jumps)."""
        if not self.live:
            await self.buffer.wait_for_room(len(audio))
        await self.buffer.append(audio, at)
        self.stats.audio_seconds_gated_in += self.buffer.to_seconds(len(audio))

    async def _keep_passages(self, passages: list[Passage]) -> None:
        self._skipping = False
        for passage in passages:
            if passage.audio:
                await self._keep(passage.audio, passage.offset)
            if passage.closes:
                await self.buffer.pause()


class EventQueue:
    """The session's events, in order, to the router. An event goes straight from the task
    that received it (``publish.offer``) while nothing waits before it and the router takes it
    without waiting; otherwise it queues for the publisher task, which may wait."""

    def __init__(
        self,
        name: str,
        buffer: ReplayBuffer,
        publish: Publish,
        acked: Callable[[int], None],
        phrases: PhraseTracker | None = None,
    ) -> None:
        self.name = name
        self.phrases = phrases  # matches triggers on what is emitted, queues the phrase events
        self.buffer = buffer
        self.publish = publish
        self._offer: Offer | None = getattr(publish, "offer", None)
        self._busy = False  # the publisher task is handing an event on (it may be waiting)
        self.acked = acked  # called with the stream offset a committed final covers
        self.dropped_interims = 0
        self.last_final = 0  # stream offset the last final queued covers
        self._outstanding = 0  # finals published, not acknowledged yet
        self._silence: int | None = None  # covered by finals without words, after those
        self._queue: asyncio.Queue[tuple[AnyEvent | None, int | None] | None] = asyncio.Queue(
            EVENT_QUEUE_SIZE
        )

    async def emit(self, event: AnyEvent | None) -> None:
        if event is None:  # perhaps a final without words (silence): it covers audio too
            if self.buffer.covered > self.last_final:
                self.last_final = self.buffer.covered
                await self._hand_on((None, self.last_final))
            return
        if event.kind == "interim" and self._queue.full():
            self.dropped_interims += 1  # superseded by the final anyway; never block for them
            if self.dropped_interims % 100 == 1:
                log.warning("source %s: sinks are slow, dropping interim results", self.name)
        else:
            covered = None
            if event.kind == "final":
                covered = self.last_final = self.buffer.covered
            await self._hand_on((event, covered))
        if self.phrases is not None:  # even on a dropped interim: a trigger fires at once
            for phrase in self.phrases.observe(event):
                await self._hand_on((phrase, None))

    async def _hand_on(self, item: tuple[AnyEvent | None, int | None]) -> None:
        if not self._offered(item):
            await self._queue.put(item)

    def _offered(self, item: tuple[AnyEvent | None, int | None]) -> bool:
        """Handed on now: nothing queued before it, and the router took it without waiting."""
        if self._offer is None or self._busy or not self._queue.empty():
            return False
        event, covered = item
        if event is None:
            self._silent(covered)
            return True
        if covered is None:
            return self._offer(event, None)
        self._outstanding += 1  # before: the router may acknowledge it at once
        if self._offer(event, partial(self._committed, covered)):
            return True
        self._outstanding -= 1
        return False

    async def run(self) -> None:
        """The publisher task: until :meth:`close` (after what was queued)."""
        while (item := await self._queue.get()) is not None:
            event, covered = item
            self._busy = True
            try:
                if event is None:  # silence: free it with the finals before it
                    self._silent(covered)
                elif covered is None:
                    await self.publish(event, None)
                else:
                    self._outstanding += 1
                    await self.publish(event, partial(self._committed, covered))
            finally:
                self._busy = False

    def _silent(self, covered: int | None) -> None:
        """Audio covered by finals without words: freed with the finals before it."""
        if covered is not None and self._outstanding:
            self._silence = covered
        elif covered is not None:
            self.acked(covered)

    def _committed(self, covered: int) -> None:
        self._outstanding -= 1
        self.acked(covered)
        if not self._outstanding and self._silence is not None:
            silence, self._silence = self._silence, None
            self.acked(silence)

    async def close(self) -> None:
        await self._queue.put(None)
