"""Spooled audio, transcribed before the live audio, each run in a session of its own.

Two cases. At start, the runs earlier starts left in the spool (:meth:`earlier_runs`), oldest
first. On reconnecting after an outage longer than the replay buffer, what the buffer dropped
before a final covered it (:meth:`dropped`): it is in the live run's spool, and is transcribed
as a span of that run through the quietest moment of the buffer's first second, so no word is
cut in two; the live stream resumes there. The recovering sessions' events say they were
recovered and carry the run's own times. Stopping, what is left stays in the spool for the
next start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from listend.daemon.stream.replay import ReplayBuffer
from listend.daemon.stream.results import EventFactory
from listend.daemon.stream.spool import SpoolRun
from listend.daemon.stream.spooling import SpoolKeeper

log = logging.getLogger(__name__)

QUIET_SEARCH_SECONDS = 1.0  # a span of the live run ends in the quietest 10 ms of this


class Transcriber(Protocol):
    """A stream session transcribing one spooled run."""

    buffer: ReplayBuffer

    async def run(self, epoch: int | None = None) -> None: ...

    def stop(self, within: float | None = None) -> None: ...


class SpoolRecovery:
    def __init__(
        self,
        keeper: SpoolKeeper,
        factory: EventFactory,
        *,
        spawn: Callable[[SpoolRun], Transcriber],
        note_gap: Callable[[int, str], None],
        stopping: Callable[[], bool],
        buffer_seconds: float,
    ) -> None:
        self.keeper = keeper
        self.buffer = keeper.buffer  # the live session's
        self.factory = factory  # the live session's
        self.source = keeper.source
        self._spawn = spawn
        self._note_gap = note_gap
        self._stopping = stopping
        self._buffer_seconds = buffer_seconds
        self.current: Transcriber | None = None  # transcribing a spooled run now

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()

    async def earlier_runs(self) -> None:
        """Before the live audio (which waits in the replay buffer, and in the spool if it
        waits too long)."""
        for index, run in enumerate(await self.keeper.spool.load()):
            if self._stopping():
                break
            log.info("source %s: transcribing %.1fs of spooled audio", self.source, run.seconds)
            await self._transcribe(run, epoch=self.factory.epoch - 1 - index)

    async def dropped(self) -> None:
        """The replay buffer dropped audio no final covered: transcribe it from the spool, then
        the live stream resumes where the span ended (its :meth:`ReplayBuffer.covered`)."""
        buffer = self.buffer
        while buffer.lost():
            cut = buffer.quietest(buffer.start, QUIET_SEARCH_SECONDS)  # the span's end
            if (span := await self.keeper.dropped(cut)) is None:
                return  # not in the spool: the session logs the gap
            lost = cut - buffer.covered
            buffer.skip_lost()
            await buffer.cover(cut)  # by the span, once it is transcribed
            self.factory.skip_to(buffer.source_seconds(cut))
            if self._stopping():
                return  # the span holds its spool for the next start
            log.warning(
                "source %s: the outage outlasted the replay buffer "
                "(deepgram.replay_buffer_seconds=%g): transcribing the %.1fs it dropped from "
                "the spool first",
                self.source,
                self._buffer_seconds,
                buffer.to_seconds(lost),
            )
            recovery = await self._transcribe(span, epoch=int(time.time() * 1000))
            if recovery.buffer.covered >= recovery.buffer.end:  # (not stopped half-way)
                self._note_gap(lost - recovery.buffer.end, "it did not fit in the spool")

    async def _transcribe(self, run: SpoolRun, *, epoch: int) -> Transcriber:
        recovery = self.current = self._spawn(run)
        try:
            await recovery.run(epoch=epoch)
        finally:
            self.current = None
        return recovery
