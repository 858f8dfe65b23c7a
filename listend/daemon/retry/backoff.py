"""The one retry delay policy used everywhere: capped exponential backoff with full jitter.

Sources, stream sessions, MQTT and HTTP sinks each hold a :class:`Backoff`; none writes its
own loop of sleeps. Randomness, sleeping and the clock are injectable for tests.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Backoff:
    """``delay = random() * min(cap, initial * factor**attempt)``; reset after a stable period."""

    def __init__(
        self,
        *,
        initial: float = 0.5,
        cap: float = 30.0,
        factor: float = 2.0,
        stable_after: float = 30.0,
        rng: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.stable_after = stable_after
        self._rng = rng
        self._sleep = sleep
        self._clock = clock
        self.attempt = 0
        self._up_since: float | None = None

    def next_delay(self) -> float:
        exponent = min(self.attempt, 32)  # cap the exponent, not only the result
        ceiling = min(self.cap, self.initial * self.factor**exponent)
        self.attempt += 1
        return self._rng() * ceiling

    async def wait(self, *, at_least: float = 0.0) -> float:
        """Sleep for the next delay (or ``at_least``, e.g. a server's Retry-After)."""
        self._up_since = None
        delay = max(self.next_delay(), at_least)
        await self._sleep(delay)
        return delay

    def connected(self) -> None:
        """Mark the start of a (possibly) stable period."""
        self._up_since = self._clock()

    def settle(self) -> None:
        """Reset the attempt counter if the connection has been stable long enough."""
        if self._up_since is not None and self._clock() - self._up_since >= self.stable_after:
            self.attempt = 0

    def failed(self) -> None:
        """A failure: reset first if we had been up long enough, so a blip retries quickly."""
        self.settle()
        self._up_since = None

    def reset(self) -> None:
        self.attempt = 0
        self._up_since = None
