"""The one restart loop for live sources (microphone, command): run, lose it, back off, resume.

A source describes one *attempt* (open the device or start the process, yield its chunks) and
raises :class:`SourceInterrupted` when that attempt ends in a way worth retrying. The loop
reports through the shared :class:`~listend.daemon.retry.outage.Outage` (a warning when an
outage starts, one line when audio flows again) and waits with the shared
:class:`~listend.daemon.retry.backoff.Backoff`. Other exceptions (bugs, permanent errors)
propagate; ``CancelledError`` always does.
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
from listend.daemon.retry.outage import Outage

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


def restart_problem(stats: RestartStats) -> str | None:
    """A restarting source's :meth:`Source.problem`: its last error while it is not up."""
    if stats.up:
        return None
    return stats.last_error or "starting"


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
    outage = Outage(
        label,
        retrying="retrying with backoff until it is back",
        recovered="resumed",
        stable_after=backoff.stable_after,
        logger=log,
        clock=clock,
    )
    while True:
        try:
            async with aclosing(attempt()) as items:
                async for item in items:
                    if not stats.up:
                        backoff.connected()
                        outage.up()
                        stats.up, stats.down_since = True, None
                    yield item
        except SourceInterrupted as exc:
            outage.failed(str(exc))
            stats.up, stats.down_since = False, clock()
            stats.outages, stats.failed_attempts = outage.outages, outage.failures
            stats.last_error = outage.last_error
        else:
            stats.up = False
            return
        backoff.failed()
        await backoff.wait()
