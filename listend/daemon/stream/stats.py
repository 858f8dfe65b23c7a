"""What a stream session counts, for sd_notify STATUS, /readyz and /metrics."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class SessionStats:
    """Counters and state the daemon reports (sd_notify STATUS, /readyz, /metrics)."""

    connected: bool = False
    first_attempt: asyncio.Event = field(default_factory=asyncio.Event)  # READY=1 waits on it
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
