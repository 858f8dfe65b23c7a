"""``listend transcribe``'s progress line: the upload, then the decode, on a terminal only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TextIO

REFRESH = 0.1  # seconds between progress bar redraws


class Progress:
    """One line on stderr (only when it is a terminal): the upload, then the decode.

    The local engine reports the seconds it has decoded (of the file's duration, when the
    file says); for Deepgram, which says nothing until it answers, the time spent waiting.
    """

    def __init__(
        self,
        total: int,
        stream: TextIO,
        *,
        duration: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = max(total, 1)
        self.upload = total > 0  # a URL is fetched by the server: nothing to upload
        self.sent = 0
        self.stream = stream
        self.enabled = stream.isatty()
        self.duration = duration
        self.decoded: float | None = None
        self._clock = clock
        self._started = clock()
        self._uploaded_at: float | None = None if self.upload else self._started
        self._shown_at = 0.0

    def advance(self, count: int) -> None:
        self.sent += count
        if self.sent >= self.total and self._uploaded_at is None:
            self._uploaded_at = self._clock()
        self._draw(force=self.sent >= self.total)

    def decoded_to(self, seconds: float) -> None:
        self.decoded = seconds
        self._draw()

    async def tick(self) -> None:
        """Redraw while nothing else moves (Deepgram thinking): the elapsed time goes on."""
        while True:
            await asyncio.sleep(REFRESH * 5)
            self._draw()

    def line(self) -> str:
        uploaded = f"{self.sent / 1e6:.1f}/{self.total / 1e6:.1f} MB" if self.upload else "URL"
        if self.decoded is not None:
            if self.duration:
                fraction = min(1.0, self.decoded / self.duration)
                what = f"decoded {self.decoded:.0f}/{self.duration:.0f} s, uploaded {uploaded}"
            else:
                fraction = min(1.0, self.sent / self.total)
                what = f"decoded {self.decoded:.0f} s, uploaded {uploaded}"
        else:
            fraction = min(1.0, self.sent / self.total)
            what = uploaded
            if self._uploaded_at is not None:
                what += f", transcribing... {self._clock() - self._uploaded_at:.0f} s"
        bar = "#" * int(fraction * 30)
        return f"[{bar:<30}] {fraction:4.0%} {what}"

    def _draw(self, *, force: bool = False) -> None:
        now = self._clock()
        if self.enabled and (force or now - self._shown_at >= REFRESH):
            self._shown_at = now
            self.stream.write(f"\r\x1b[K{self.line()}")
            self.stream.flush()

    def done(self) -> None:
        if self.enabled and (self.sent or self.decoded is not None):
            self.stream.write("\r\x1b[K")
            self.stream.flush()
