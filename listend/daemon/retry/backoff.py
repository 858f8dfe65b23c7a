"""The one retry delay policy used everywhere: capped exponential backoff with full jitter.

Sources, stream sessions, MQTT and HTTP sinks each hold a :class:`Backoff`; none writes its
own loop of sleeps. Randomness, sleeping and the clock are injectable for tests.

What resets the delays: a connection that proved itself, because the caller saw it work
(:meth:`Backoff.healthy`, e.g. a stream got results back) or because it stayed up for
``stable_after`` seconds. A blip then retries from the first delay; something that accepts
and fails at once, or keeps refusing, still backs off to the cap.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Backoff:
    """``delay = random() * min(cap, initial * factor**attempt)``; reset once proven healthy."""

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
        self._healthy = False

    @property
    def ceiling(self) -> float:
        """The most the next delay can be (what the jitter draws below)."""
        return min(self.cap, self.initial * self.factor ** min(self.attempt, 32))

    def next_delay(self) -> float:
        ceiling = self.ceiling  # the exponent is capped too, not only the result
        self.attempt += 1
        return self._rng() * ceiling

    def _delay(self, at_least: float, at_most: float) -> float:
        self._up_since = None
        self._healthy = False
        return max(0.0, min(max(self.next_delay(), at_least), at_most))

    async def wait(self, *, at_least: float = 0.0, at_most: float = math.inf) -> float:
        """Sleep for the next delay (or ``at_least``, e.g. a server's Retry-After, but at most
        ``at_most``, e.g. what is left before a deadline); return the delay."""
        delay = self._delay(at_least, at_most)
        await self._sleep(delay)
        return delay

    async def wait_unless(
        self,
        stop: asyncio.Event | None,
        *,
        at_least: float = 0.0,
        at_most: float = math.inf,
    ) -> bool:
        """:meth:`wait`, cut short once ``stop`` is set; True when it was (or already set).

        ``stop=None`` waits the full delay. Cancelling the caller cancels the wait and
        propagates, as any await does.
        """
        delay = self._delay(at_least, at_most)
        if stop is None:
            await self._sleep(delay)
            return False
        if stop.is_set():
            return True
        sleeper = asyncio.ensure_future(self._sleep(delay))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (sleeper, stopper):
                waiter.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)
        return stop.is_set()

    def connected(self) -> None:
        """Mark the start of a (possibly) stable period."""
        self._up_since = self._clock()
        self._healthy = False

    def healthy(self) -> None:
        """What :meth:`connected` marked has proven to work (it was answered): the next
        failure is a blip, retried from the first delay however soon it comes."""
        if self._up_since is not None:
            self._healthy = True

    def settle(self) -> None:
        """Reset the attempt counter if the connection proved healthy or stayed up long enough."""
        up_since = self._up_since
        stable = up_since is not None and self._clock() - up_since >= self.stable_after
        if self._healthy or stable:
            self.attempt = 0

    def failed(self) -> None:
        """A failure: reset first if what failed had proven itself, so a blip retries quickly."""
        self.settle()
        self._up_since = None
        self._healthy = False

    def reset(self) -> None:
        self.attempt = 0
        self._up_since = None
        self._healthy = False
