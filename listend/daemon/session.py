"""A stream session: one source's audio over one Deepgram stream, events out to the router.

Placeholder until the stream-session work lands: it drains the source so the daemon runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from listend.daemon.config import DeepgramConfig
from listend.daemon.events import AnyEvent
from listend.daemon.sources import Source
from listend.daemon.stream_options import StreamOptions

log = logging.getLogger(__name__)

Publish = Callable[[AnyEvent], Awaitable[None]]


@dataclass
class SessionStats:
    """Counters and state the daemon reports (sd_notify STATUS, /readyz, /metrics)."""

    connected: bool = False
    first_attempt: asyncio.Event = field(default_factory=asyncio.Event)  # READY=1 waits on it
    connects: int = 0
    reconnects: int = 0
    keepalives: int = 0
    audio_seconds_sent: float = 0.0
    audio_seconds_captured: float = 0.0
    finals: int = 0
    gap_seconds: float = 0.0
    last_final_at: float | None = None  # time.monotonic() of the last final
    final_latencies: list[float] = field(default_factory=list)  # drained by the metrics exporter


@dataclass
class Endpoint:
    """Where and how to connect: a base URL and the Authorization header value."""

    url: str
    authorization: str | None


class StreamSession:
    def __init__(
        self,
        *,
        name: str,
        device: str,
        source: Source,
        options: StreamOptions,
        deepgram: DeepgramConfig,
        endpoint: Endpoint,
        publish: Publish,
    ) -> None:
        self.name = name
        self.device = device
        self.source = source
        self.options = options
        self.deepgram = deepgram
        self.endpoint = endpoint
        self.publish = publish
        self._stop = asyncio.Event()
        self.stats = SessionStats()

    def stop(self) -> None:
        """Ask for a graceful end: finalize, close, then :meth:`run` returns."""
        self._stop.set()

    async def run(self) -> None:
        self.stats.first_attempt.set()
        async for _chunk in self.source.stream():
            if self._stop.is_set():
                break
        log.info("source %s ended", self.name)
