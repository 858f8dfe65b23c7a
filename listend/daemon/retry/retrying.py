"""The one "try until it works" loop: attempt, report the failure, back off, again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from listend.daemon.retry.backoff import Backoff
from listend.daemon.retry.outage import Outage

T = TypeVar("T")


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    *,
    backoff: Backoff,
    outage: Outage,
    describe: Callable[[Exception], str] = str,
) -> T:
    """Await ``attempt()`` until it returns, and return its result.

    Each failure (any ``Exception``; ``CancelledError`` and the like propagate) is reported to
    ``outage`` as ``describe(exc)`` and followed by ``backoff``'s wait. The caller says when
    what it got is up (``backoff.connected()``, ``outage.up()``): only it knows.
    """
    while True:
        try:
            return await attempt()
        except Exception as exc:  # every failure is retried; the outage says why
            outage.failed(describe(exc))
        backoff.failed()
        await backoff.wait()
