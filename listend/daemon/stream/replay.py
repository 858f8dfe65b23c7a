"""The audio a stream session has captured but no final has covered yet.

Offsets are absolute byte positions in the *stream*: the audio sent to Deepgram since the
session started. Without voice gating that is the source's audio itself; with gating it is the
gated-in parts, and :attr:`ReplayBuffer.timeline` maps stream offsets back to source time. The
buffer is bounded: when it is full the oldest audio is dropped, and if that audio was never
covered by a final the session reports the gap. Audio a final covers stays until that final is
committed to every sink's outbox (:meth:`ReplayBuffer.release`, the end-to-end
acknowledgement), so the durable spool can still take it if the process stops first. A replay
after a reconnect therefore resends only gated-in audio, and its times map back through the
same timeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from array import array
from bisect import bisect_right
from collections import deque

from listend.daemon.plugin.source import AudioFormat
from listend.daemon.stream.timeline import Timeline


class ReplayBuffer:
    """Captured audio from :attr:`start` to :attr:`end`; :attr:`covered` is what finals cover."""

    def __init__(self, fmt: AudioFormat, max_seconds: float) -> None:
        self.format = fmt
        self.capacity = max(fmt.bytes_per_frame, self.to_bytes(max_seconds))
        self._data = bytearray()
        self.start = 0  # offset of _data[0]
        self.end = 0  # offset just after the last byte to stream
        self.covered = 0  # audio before this offset is covered by a final (may be < start)
        self.acked = 0  # ... by a final committed to every outbox (<= covered)
        self.ended = False  # the source has returned (or capture was stopped)
        self._stamps: deque[tuple[int, float]] = deque()  # (chunk end offset, monotonic)
        self._waiters: list[asyncio.Future[None]] = []  # woken on any change
        self.timeline = Timeline(fmt.bytes_per_second)
        self.source_end = 0  # source offset just after the last captured byte
        self.pauses: list[int] = []  # stream offsets where the voice gate closed
        self.waiting_for_room = False  # a source that is not live waits for finals to free some

    def source_seconds(self, offset: int, *, end: bool = False) -> float:
        """Source time of a stream offset."""
        return self.timeline.to_source(self.to_seconds(offset), end=end)

    def stream_offset(self, source_seconds: float) -> int:
        """Stream offset of a source time (see :meth:`Timeline.to_stream`)."""
        return self.to_bytes(self.timeline.to_stream(source_seconds))

    def to_bytes(self, seconds: float) -> int:
        """Seconds of audio to bytes, on the nearest frame boundary; any positive time is at
        least one frame (a chunk of 0 bytes would make the sender spin)."""
        frames = round(seconds * self.format.sample_rate)
        if seconds > 0:
            frames = max(frames, 1)
        return frames * self.format.bytes_per_frame

    def to_seconds(self, offset: int) -> float:
        return offset / self.format.bytes_per_second

    @property
    def uncovered(self) -> int:
        return self.end - max(self.covered, self.start)

    async def append(self, chunk: bytes, at: int | None = None) -> None:
        """Add audio to stream; ``at`` is its source offset when it does not follow the last
        chunk (the voice gate left audio out). Drops the oldest beyond capacity (:meth:`lost`)."""
        if at is not None and at != self.source_end:
            self.timeline.jump(self.end, at)
            self.source_end = at
        self.source_end += len(chunk)
        self._data += chunk
        self.end += len(chunk)
        self._stamps.append((self.end, time.monotonic()))
        excess = len(self._data) - self.capacity
        if excess > 0:
            excess -= excess % self.format.bytes_per_frame
            self._trim(self.start + excess)
        await self._notify()

    async def pause(self) -> None:
        """The voice gate closed here: the sender finalizes what it sent so far."""
        if not self.pauses or self.pauses[-1] != self.end:
            self.pauses.append(self.end)
            await self._notify()

    def next_pause(self, after: int) -> int | None:
        """The first gate close after stream offset ``after``."""
        index = bisect_right(self.pauses, after)
        return self.pauses[index] if index < len(self.pauses) else None

    async def finish(self) -> None:
        self.ended = True
        await self._notify()

    def read(self, offset: int, limit: int) -> bytes:
        """Up to ``limit`` bytes from ``offset`` (which must not be before :attr:`start`)."""
        if offset < self.start:
            raise ValueError(f"offset {offset} was already dropped (buffer starts at {self.start})")
        begin = offset - self.start
        return bytes(self._data[begin : begin + limit])

    def quietest(self, begin: int, seconds: float) -> int:
        """The start of the quietest 10 ms in the ``seconds`` from stream offset ``begin``
        (linear16; else ``begin``): where a cut between two streams splits no word."""
        fmt = self.format
        if fmt.encoding != "linear16" or begin < self.start:
            return begin
        window = self.to_bytes(0.01)
        audio = self.read(begin, self.to_bytes(seconds))
        best, quietest = begin, None
        for at in range(0, len(audio) - window + 1, window):
            samples = array("h", audio[at : at + window])
            if sys.byteorder == "big":
                samples.byteswap()
            energy = sum(map(abs, samples))
            if quietest is None or energy < quietest:
                best, quietest = begin + at, energy
                if not energy:
                    break
        return best

    def lost(self) -> int:
        """Bytes dropped for lack of room that no final covered (a gap in the transcript)."""
        return max(0, self.start - self.covered)

    def skip_lost(self) -> int:
        """Accept the gap: count the dropped audio as covered; return how many bytes it was."""
        lost = self.lost()
        self.covered = max(self.covered, self.start)
        return lost

    async def cover(self, offset: int) -> float | None:
        """Finals now cover audio up to ``offset`` (no replay needs it); return when it was
        captured. It is freed once the final is committed (:meth:`release`)."""
        offset = min(offset, self.end)
        if offset <= self.covered:
            return None
        self.covered = offset
        captured = None
        while self._stamps and self._stamps[0][0] < offset:
            self._stamps.popleft()
        if self._stamps:
            captured = self._stamps[0][1]
        await self._notify()
        return captured

    def release(self, offset: int) -> None:
        """The finals covering audio up to ``offset`` are committed to every outbox: free it."""
        offset = min(offset, self.covered)
        if offset <= self.acked:
            return
        self.acked = offset
        if offset > self.start:
            self._trim(offset)
        self.wake()

    def _trim(self, offset: int) -> None:
        del self._data[: offset - self.start]
        self.start = offset
        # Chunks wholly dropped need no capture time: without this an outage grows the stamps
        # (one per chunk) without bound while the data itself stays at capacity.
        while len(self._stamps) > 1 and self._stamps[0][0] <= offset:
            self._stamps.popleft()
        # results for audio no final covered may still arrive: keep mapping it until covered,
        # but no further back than one buffer's worth of dropped audio (bounded in an outage)
        self.timeline.forget_before(max(min(offset, self.covered), offset - self.capacity))
        if self.pauses and self.pauses[0] < offset:
            del self.pauses[: bisect_right(self.pauses, offset - 1)]

    async def wait_for_data(self, offset: int, max_wait: float | None = None) -> None:
        """Return when audio beyond ``offset`` exists, the source ended, or ``max_wait`` passed."""
        if self.end > offset or self.ended:
            return
        if max_wait is None:
            await self._changed()
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max_wait):
                while not (self.end > offset or self.ended):
                    await self._changed()

    async def wait_for_room(self, needed: int) -> None:
        """Backpressure for sources that are not live: wait until finals free room for
        ``needed`` more bytes (appending more would drop audio not sent yet)."""
        needed = max(1, min(needed, self.capacity))
        if self.uncovered + needed <= self.capacity:
            return
        self.waiting_for_room = True
        self.wake()  # a sender with nothing left to send may Finalize to make room
        try:
            while self.uncovered + needed > self.capacity:
                await self._changed()
        finally:
            self.waiting_for_room = False

    def _changed(self) -> asyncio.Future[None]:
        """A future completed by the next change (cheaper per chunk than a Condition)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    async def _notify(self) -> None:
        self.wake()

    def wake(self) -> None:
        """Wake whoever waits for a change (they look again and wait again if need be)."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
