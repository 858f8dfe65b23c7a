"""When a stream session tries to connect again, and until when.

While running, the session's :class:`Backoff` decides (a stop cuts its wait short). Once
stopping, a stream that is down must not wait out a long backoff and try once at the end:
it retries on a short schedule until the stop deadline, which leaves time for the last
connection's Finalize and CloseStream within what the stop may take.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from listend.daemon.retry.backoff import Backoff

log = logging.getLogger(__name__)

#: A stream connection up this long counts as healthy even before any result came back.
HEALTHY_AFTER = 5.0
#: The retry schedule once stopping: short, so a stream that is down delivers what it holds.
DRAIN_INITIAL = 0.1
DRAIN_CAP = 1.0


class RetrySchedule:
    """The waits between a session's connection attempts, and its stop deadline."""

    def __init__(
        self,
        source: str,
        finalize_timeout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.finalize_timeout = finalize_timeout
        self.drain = Backoff(initial=DRAIN_INITIAL, cap=DRAIN_CAP)
        self.deadline: float | None = None  # set by stop(): no new attempt after it
        self._clock = clock

    def stop(self, within: float | None = None) -> None:
        """The session stops and may take ``within`` seconds (default: four finalize
        timeouts); attempts go on until that, less what the last Finalize/CloseStream needs."""
        if self.deadline is not None:
            return
        if within is None:
            within = 4 * self.finalize_timeout
        reserve = min(2 * self.finalize_timeout, within / 2)
        self.deadline = self._clock() + within - reserve

    def out_of_time(self) -> bool:
        return self.deadline is not None and self._clock() >= self.deadline

    def left(self) -> float:
        """Seconds until the stop deadline (infinite while not stopping)."""
        if self.deadline is None:
            return math.inf
        return max(0.0, self.deadline - self._clock())

    async def wait(
        self,
        backoff: Backoff,
        stop: asyncio.Event,
        *,
        retry_after: float | None,
        at_most: float = math.inf,
    ) -> None:
        """After a failed attempt: ``backoff`` (cut short by ``stop``), or the drain schedule
        once stopping; never less than the server's ``retry_after``, never past ``at_most``
        or the stop deadline."""
        backoff.failed()
        at_least = retry_after or 0.0
        if self.deadline is None:
            log.debug(
                "source %s: retrying within %.1fs%s",
                self.source,
                max(at_least, backoff.ceiling),
                f" (Retry-After {at_least:g}s)" if retry_after else "",
            )
            await backoff.wait_unless(stop, at_least=at_least, at_most=at_most)
        else:
            delay = await self.drain.wait(at_least=at_least, at_most=min(at_most, self.left()))
            log.debug("source %s: stopping, retried after %.2fs", self.source, delay)
