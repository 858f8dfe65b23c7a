"""What a stream session counts, for sd_notify STATUS, /readyz and /metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: A live source that has captured nothing for this long is not up (a microphone that went
#: quiet at the driver level, a camera stream that froze).
AUDIO_SILENT_AFTER = 10.0
#: How long READY=1 waits for a source's first audio (a missing device has failed by then).
AUDIO_GRACE = 3.0


def _no_problem() -> str | None:
    return None


@dataclass
class SessionStats:
    """Counters and state the daemon reports (sd_notify STATUS, /readyz, /metrics)."""

    connected: bool = False
    first_attempt: asyncio.Event = field(default_factory=asyncio.Event)  # READY=1 waits on it
    first_audio: asyncio.Event = field(default_factory=asyncio.Event)  # ... and a while on this
    connects: int = 0
    reconnects: int = 0
    keepalives: int = 0
    audio_seconds_sent: float = 0.0  # streamed, replays included: what Deepgram bills
    audio_seconds_captured: float = 0.0  # read from the source
    audio_seconds_gated_in: float = 0.0  # captured audio the voice gate let through (all: none)
    finals: int = 0
    gap_seconds: float = 0.0
    unspooled_seconds: float = 0.0  # audio that did not fit in the spool (lost on a crash)
    last_final_at: float | None = None  # time.monotonic() of the last final
    final_latencies: list[float] = field(default_factory=list)  # drained by the metrics exporter
    #: Set when the stream goes down (:meth:`mark_down`): the spool writer waits on it
    #: instead of polling while the stream keeps up.
    lost: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)

    def mark_up(self) -> None:
        self.connected = True
        self.lost.clear()

    def mark_down(self) -> None:
        self.connected = False
        self.lost.set()

    last_audio_at: float | None = None  # time.monotonic() of the last chunk the source gave
    stream_error: str | None = None  # why the last connection attempt failed (until one works)
    source_problem: Callable[[], str | None] = _no_problem  # the source's own account

    def heard(self, seconds: float) -> None:
        """The source delivered ``seconds`` of audio."""
        self.audio_seconds_captured += seconds
        self.last_audio_at = time.monotonic()
        self.first_audio.set()

    def connection_opened(self) -> None:
        """A connection attempt succeeded: up, counted, the last attempt's error forgotten."""
        self.first_attempt.set()
        self.mark_up()
        self.stream_error = None
        self.connects += 1
        if self.connects > 1:
            self.reconnects += 1

    def attempt_failed(self, reason: str) -> None:
        """A connection attempt failed (or a connection was lost) because of ``reason``."""
        self.mark_down()
        self.stream_error = reason
        self.first_attempt.set()

    def problems(self, name: str, now: float | None = None) -> list[str]:
        """Why this stream is not up: its audio does not flow, or it is not connected."""
        now = time.monotonic() if now is None else now
        found: list[str] = []
        if (problem := self.source_problem()) is not None:
            found.append(f"source {name}: {problem}")
        elif self.last_audio_at is None:
            found.append(f"source {name}: no audio yet")
        elif now - self.last_audio_at > AUDIO_SILENT_AFTER:
            found.append(f"source {name}: no audio for {now - self.last_audio_at:.0f}s")
        if not self.connected:
            why = f" ({self.stream_error})" if self.stream_error else ""
            found.append(f"stream {name}: not connected{why}")
        return found
