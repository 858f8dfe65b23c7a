"""The one restart loop for live sources (microphone, command): run, lose it, back off, resume.

A source describes one *attempt* (open the device or start the process, yield its chunks) and
raises :class:`SourceInterrupted` when that attempt ends in a way worth retrying. The loop logs
the first failure of an outage once as a warning (later retries only at debug level), waits
with the shared :class:`~listend.daemon.backoff.Backoff`, and logs once more when audio flows
again. Other exceptions (bugs, permanent errors) propagate; ``CancelledError`` always does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TypeVar

from pydantic import Field

from listend.daemon.plugin.source import SourceConfig
from listend.daemon.retry.backoff import Backoff

log = logging.getLogger(__name__)

T = TypeVar("T")


class SourceInterrupted(Exception):  # noqa: N818  # an event, not a bug: the attempt ended
    """One attempt ended (device lost, process exited); the message says why."""


class RestartingSourceConfig(SourceConfig):
    """Options every source that re-opens its input shares."""

    max_retry_delay: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="longest wait between attempts to re-open (full-jitter exponential backoff)",
    )


@dataclass
class RestartStats:
    """What health and metrics report about a live source."""

    up: bool = False
    outages: int = 0
    failed_attempts: int = 0
    last_error: str | None = None
    down_since: float | None = None  # time.monotonic() when the current outage began


async def restarting(
    attempt: Callable[[], AsyncGenerator[T, None]],
    *,
    label: str,
    backoff: Backoff,
    stats: RestartStats,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[T]:
    """Yield from ``attempt()`` again and again; return only when an attempt returns.

    ``label`` starts every log line (``source mic``). An attempt counts as up once it has
    yielded its first item. An outage lasts until the source has stayed up for the backoff's
    ``stable_after``: a command that crashes every few seconds is one outage (one warning,
    one "resumed"), not a warning per crash, and its restarts keep backing off.
    """
    outage = _Outage(label, backoff.stable_after, stats, clock)
    while True:
        try:
            async with aclosing(attempt()) as items:
                async for item in items:
                    if not stats.up:
                        backoff.connected()
                        outage.came_up()
                    yield item
        except SourceInterrupted as exc:
            outage.went_down(str(exc))
        else:
            stats.up = False
            return
        backoff.failed()
        await backoff.wait()


class _Outage:
    """Logs an outage once when it starts and once when audio flows again."""

    def __init__(
        self, label: str, stable_after: float, stats: RestartStats, clock: Callable[[], float]
    ) -> None:
        self.label = label
        self.clock = clock
        self.stable_after = stable_after
        self.stats = stats
        self.started: float | None = None  # when the current outage began
        self.up_since: float | None = None
        self.resumed_logged = False

    def came_up(self) -> None:
        now = self.clock()
        self.stats.up = True
        self.stats.down_since = None
        self.up_since = now
        if self.started is not None and not self.resumed_logged:
            self.resumed_logged = True
            log.info(
                "%s: resumed after %.1f s (%d failed attempts)",
                self.label,
                now - self.started,
                self.stats.failed_attempts,
            )

    def went_down(self, reason: str) -> None:
        now = self.clock()
        stats = self.stats
        flapping = self.up_since is not None and now - self.up_since < self.stable_after
        ongoing = self.started is not None and (not stats.up or flapping)
        stats.up = False
        stats.last_error = reason
        stats.down_since = now
        self.up_since = None
        if ongoing:
            stats.failed_attempts += 1
            log.debug("%s: still unavailable: %s", self.label, reason)
            return
        self.started = now
        self.resumed_logged = False
        stats.outages += 1
        stats.failed_attempts = 1
        log.warning("%s: %s; retrying with backoff until it is back", self.label, reason)
