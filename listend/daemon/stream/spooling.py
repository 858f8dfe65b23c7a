"""A stream session's side of the spool: write while not keeping up, free what is committed.

The session's replay buffer holds the audio; this copies what no committed final covers into
the session's :class:`SpoolRun` once a second while the stream is disconnected or more than
BEHIND_SECONDS behind (less with a short replay buffer; it looks only when that could have
become true: no polling while the stream keeps up), and once more when the session ends with
audio untranscribed (finals already received are the stop drain's to commit). Each end-to-end
acknowledgement frees the spool up to the committed final; when a session ends with everything
transcribed, its run is removed once the last final is committed. When an outage outlasted the
replay buffer, :meth:`SpoolKeeper.dropped` hands the session what the buffer dropped, to
transcribe before the live stream resumes. A session transcribing a spooled run
(``recovering``) writes nothing and frees that run instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from bisect import bisect_left

from listend.daemon.stream.replay import ReplayBuffer
from listend.daemon.stream.spool import Spool, SpoolRun
from listend.daemon.stream.stats import SessionStats

log = logging.getLogger(__name__)

SPOOL_INTERVAL = 1.0  # seconds between writes (and fsyncs) while the stream is not keeping up
BEHIND_SECONDS = 5.0  # audio no final covers beyond this: the stream is not keeping up


class SpoolKeeper:
    def __init__(
        self,
        spool: Spool,
        buffer: ReplayBuffer,
        stats: SessionStats,
        source: str,
        recovering: SpoolRun | None = None,
    ) -> None:
        self.spool = spool
        self.buffer = buffer
        self.stats = stats
        self.source = source
        self.run = recovering  # the live run's, from begin(); or the run being recovered
        self.recovering = recovering is not None
        self.spooled = 0  # stream offset: audio before it is in the spool (or committed)
        self._forget_at: int | None = None  # recovered: remove the run once acked up to here
        self._overflow = 0  # bytes that did not fit, this overflow

    @classmethod
    def of(
        cls,
        spool: Spool | None,
        buffer: ReplayBuffer,
        stats: SessionStats,
        source: str,
        recovering: SpoolRun | None = None,
    ) -> SpoolKeeper | None:
        return None if spool is None else cls(spool, buffer, stats, source, recovering)

    def begin(self, epoch: int, wall_start: float) -> None:
        self.run = SpoolRun(self.spool.directory, epoch, wall_start, self.buffer.format)

    @property
    def behind_limit(self) -> float:
        """Seconds behind that count as not keeping up: BEHIND_SECONDS, or less with a short
        replay buffer (it must be spooled before the buffer drops it)."""
        return min(BEHIND_SECONDS, self.buffer.to_seconds(self.buffer.capacity) / 2)

    def keeping_up(self) -> bool:
        behind = self.buffer.to_seconds(self.buffer.end - self.buffer.covered)
        return self.stats.connected and behind < self.behind_limit

    async def keep(self) -> None:
        """The writer task of a live session (cancelled when the session ends).

        While the stream keeps up there is nothing to write, and no reason to wake once a
        second to find that out: it sleeps until the stream goes down, or until it could be
        BEHIND_SECONDS behind (a live source brings audio at most in real time)."""
        while True:
            if not self.keeping_up():
                await self.write()
                await asyncio.sleep(SPOOL_INTERVAL)
                continue
            behind = self.buffer.to_seconds(self.buffer.end - self.buffer.covered)
            wait = max(min(SPOOL_INTERVAL, self.behind_limit), self.behind_limit - behind)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self.stats.lost.wait()

    async def write(self) -> None:
        """Append what is neither spooled nor committed (what fits under ``spool_max_mb``)."""
        run, buffer = self.run, self.buffer
        if run is None or self.recovering:
            return
        begin = max(self.spooled, buffer.acked, buffer.start)
        end = buffer.end
        if end <= begin:
            return
        room = max(0, self.spool.max_bytes - self.spool.size())
        fits = min(end - begin, room - room % buffer.format.bytes_per_frame)
        if fits < end - begin:
            self._note_overflow(end - begin - fits)
        elif self._overflow:
            self._end_overflow()
        records = self.records(begin, begin + fits)
        self.spooled = end
        await self.spool.append(run, records)

    async def dropped(self, until: int) -> SpoolRun | None:
        """What the replay buffer dropped before a final covered it (an outage outlasted it),
        up to stream offset ``until``, as a span of the live run to transcribe now; None
        when nothing was, or the spool does not hold it."""
        run, buffer = self.run, self.buffer
        if run is None or self.recovering or not buffer.lost():
            return None
        await self.write()  # all of it is on disk before the live stream moves past it
        await self.spool.flush()
        begin = max(run.acked, self.source_offset(buffer.covered))
        until = self.source_offset(until)
        if until <= begin or not run.segments or run.segments[0].source_end <= begin:
            return None
        return run.span(begin, until)

    async def finish(self, last_final: int) -> None:
        """The session ended: spool what is untranscribed; if nothing is, remove the run once
        the last final (covering stream offset ``last_final``) is committed."""
        buffer = self.buffer
        if buffer.covered >= buffer.end:  # (finals on their way are the drain's to commit)
            self._forget_at = last_final
            self.release(buffer.acked)
        elif not self.recovering:
            await self.write()
            if self.run is not None and self.run.segments:
                log.info(
                    "source %s: %.1fs of audio kept in the spool for the next start",
                    self.source,
                    buffer.to_seconds(buffer.end - max(buffer.acked, buffer.start)),
                )
        if self._overflow:
            self._end_overflow()
        await self.spool.flush()

    def release(self, offset: int) -> None:
        """Finals up to stream offset ``offset`` are committed to every outbox."""
        run = self.run
        if run is None:
            return
        if self._forget_at is not None and offset >= self._forget_at:
            self.spool.forget(run)
            self.run = None
            return
        self.spool.release(run, self.source_offset(offset))

    def source_offset(self, stream: int) -> int:
        """Source offset where stream offset ``stream`` ends (end of the earlier segment)."""
        segments = self.buffer.timeline.segments
        index = max(0, bisect_left([s for s, _ in segments], stream) - 1)
        first, source = segments[index]
        if index + 1 < len(segments) and stream > segments[index + 1][0]:
            first, source = segments[index + 1]
        return source + stream - first

    def records(self, begin: int, end: int) -> list[tuple[int, bytes]]:
        """The stream audio from ``begin`` to ``end`` as (source offset, PCM), cut where the
        voice gate left audio out."""
        segments = self.buffer.timeline.segments
        records = []
        for index, (first, source) in enumerate(segments):
            stop = segments[index + 1][0] if index + 1 < len(segments) else end
            lo, hi = max(begin, first), min(end, stop)
            if lo < hi:
                records.append((source + lo - first, self.buffer.read(lo, hi - lo)))
        return records

    def _note_overflow(self, nbytes: int) -> None:
        if not self._overflow:
            log.warning(
                "source %s: the spool is full (spool_max_mb): audio that does not fit is not "
                "kept across a restart",
                self.source,
            )
        self._overflow += nbytes
        self.stats.unspooled_seconds += self.buffer.to_seconds(nbytes)

    def _end_overflow(self) -> None:
        log.warning(
            "source %s: %.1fs of audio did not fit in the spool: a gap if listend stops "
            "before it is transcribed",
            self.source,
            self.buffer.to_seconds(self._overflow),
        )
        self._overflow = 0
