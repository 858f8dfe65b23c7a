"""Where streamed audio sits in the source: a piecewise map between stream and source time.

Without voice gating every captured byte is streamed and the two clocks are the same. With
gating only speech (plus pre-roll and hang-over) is streamed, so the stream is a concatenation
of *segments* of the source: stream offset ``s`` in segment ``i`` is source offset
``source[i] + (s - stream[i])``. Deepgram reports times on the stream's clock; events must carry
the source's, so every time goes through :meth:`Timeline.to_source`, and what finals cover goes
back through :meth:`Timeline.to_stream` to free the replay buffer.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

#: Deepgram reports times in milliseconds: a time this close to a segment boundary is on it.
BOUNDARY_EPSILON = 1e-3


class Timeline:
    """Segment starts as parallel lists: stream and source positions, in bytes and seconds."""

    def __init__(self, bytes_per_second: int) -> None:
        self.bytes_per_second = bytes_per_second
        self._stream = [0]  # byte offset in the stream where each segment starts
        self._source = [0]  # ... and where that is in the source
        self._stream_s = [0.0]
        self._source_s = [0.0]

    @property
    def segments(self) -> list[tuple[int, int]]:
        """``(stream offset, source offset)`` of each segment still mapped (for tests, logs)."""
        return list(zip(self._stream, self._source, strict=True))

    def jump(self, stream: int, source: int) -> None:
        """From stream offset ``stream`` on, the audio comes from source offset ``source``."""
        if stream == self._stream[-1]:  # the last segment got no audio: replace it
            self._source[-1] = source
            self._source_s[-1] = source / self.bytes_per_second
            return
        self._stream.append(stream)
        self._source.append(source)
        self._stream_s.append(stream / self.bytes_per_second)
        self._source_s.append(source / self.bytes_per_second)

    def forget_before(self, stream: int) -> None:
        """Audio before stream offset ``stream`` will never be mapped again (it was freed)."""
        first = bisect_right(self._stream, stream) - 1
        if first > 0:
            for positions in (self._stream, self._source, self._stream_s, self._source_s):
                del positions[:first]

    def to_source(self, stream_seconds: float, *, end: bool = False) -> float:
        """Source seconds of a time on the stream's clock.

        A time on a boundary between two segments is the start of the later segment, or with
        ``end`` (a word's or a final's end) the end of the earlier one.
        """
        times = self._stream_s
        if len(times) == 1:
            return self._source_s[0] + stream_seconds - times[0]
        if end:
            index = bisect_left(times, stream_seconds - BOUNDARY_EPSILON) - 1
        else:
            index = bisect_right(times, stream_seconds + BOUNDARY_EPSILON) - 1
        index = max(index, 0)
        into = max(0.0, stream_seconds - times[index])
        if index + 1 < len(times):
            into = min(into, times[index + 1] - times[index])
        return self._source_s[index] + into

    def to_stream(self, source_seconds: float) -> float:
        """Stream seconds of a source time; a time in audio that was not streamed maps to where
        the stream resumed after it (what a final up to that time covers)."""
        times = self._source_s
        index = max(bisect_right(times, source_seconds) - 1, 0)
        into = max(0.0, source_seconds - times[index])
        if index + 1 < len(times):
            into = min(into, self._stream_s[index + 1] - self._stream_s[index])
        return self._stream_s[index] + into
