"""The audio a stream session has captured but no final has covered yet.

Offsets are absolute byte positions in the source's audio since the session started, so they
convert directly to source time. The buffer is bounded: when it is full the oldest audio is
dropped, and if that audio was never covered by a final the session reports the gap.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from listend.daemon.sources import AudioFormat


class ReplayBuffer:
    """Captured audio from :attr:`start` to :attr:`end`; :attr:`covered` is what finals cover."""

    def __init__(self, fmt: AudioFormat, max_seconds: float) -> None:
        self.format = fmt
        self.capacity = max(fmt.bytes_per_frame, self.to_bytes(max_seconds))
        self._data = bytearray()
        self.start = 0  # offset of _data[0]
        self.end = 0  # offset just after the last captured byte
        self.covered = 0  # audio before this offset is covered by a final (may be < start)
        self.ended = False  # the source has returned (or capture was stopped)
        self._stamps: deque[tuple[int, float]] = deque()  # (chunk end offset, monotonic)
        self._changed = asyncio.Condition()

    def to_bytes(self, seconds: float) -> int:
        """Source seconds to an offset, on the nearest frame boundary."""
        return round(seconds * self.format.sample_rate) * self.format.bytes_per_frame

    def to_seconds(self, offset: int) -> float:
        return offset / self.format.bytes_per_second

    @property
    def uncovered(self) -> int:
        return self.end - max(self.covered, self.start)

    def full(self) -> bool:
        return self.uncovered >= self.capacity

    async def append(self, chunk: bytes) -> None:
        """Add captured audio; drop the oldest beyond capacity (see :meth:`lost`)."""
        self._data += chunk
        self.end += len(chunk)
        self._stamps.append((self.end, time.monotonic()))
        excess = len(self._data) - self.capacity
        if excess > 0:
            excess -= excess % self.format.bytes_per_frame
            self._trim(self.start + excess)
        await self._notify()

    async def finish(self) -> None:
        self.ended = True
        await self._notify()

    def read(self, offset: int, limit: int) -> bytes:
        """Up to ``limit`` bytes from ``offset`` (which must not be before :attr:`start`)."""
        if offset < self.start:
            raise ValueError(f"offset {offset} was already dropped (buffer starts at {self.start})")
        begin = offset - self.start
        return bytes(self._data[begin : begin + limit])

    def lost(self) -> int:
        """Bytes dropped for lack of room that no final covered (a gap in the transcript)."""
        return max(0, self.start - self.covered)

    def skip_lost(self) -> int:
        """Accept the gap: count the dropped audio as covered; return how many bytes it was."""
        lost = self.lost()
        self.covered = max(self.covered, self.start)
        return lost

    async def cover(self, offset: int) -> float | None:
        """Finals now cover audio up to ``offset``: free it; return when it was captured."""
        offset = min(offset, self.end)
        if offset <= self.covered:
            return None
        self.covered = offset
        captured = None
        while self._stamps and self._stamps[0][0] < offset:
            self._stamps.popleft()
        if self._stamps:
            captured = self._stamps[0][1]
        if offset > self.start:
            self._trim(offset)
        await self._notify()
        return captured

    def _trim(self, offset: int) -> None:
        del self._data[: offset - self.start]
        self.start = offset

    async def wait_for_data(self, offset: int, max_wait: float) -> None:
        """Return when audio beyond ``offset`` exists, the source ended, or ``max_wait`` passed."""
        async with self._changed:
            try:
                async with asyncio.timeout(max_wait):
                    await self._changed.wait_for(lambda: self.end > offset or self.ended)
            except TimeoutError:
                return

    async def wait_for_room(self) -> None:
        """Backpressure for sources that are not live: wait until finals free some room."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self.full())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
