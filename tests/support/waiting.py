"""Waiting on conditions with a deadline (never sleep-and-hope), and running async tests.

The deadlines are generous bounds for a machine whose cores are busy with other jobs; a
healthy run returns as soon as the condition holds.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Coroutine
from typing import Any

POLL = 0.02


class Deadline:
    def __init__(self, timeout: float, what: str) -> None:
        self.timeout = timeout
        self.what = what
        self.end = time.monotonic() + timeout

    def passed(self) -> bool:
        return time.monotonic() >= self.end

    def fail(self) -> AssertionError:
        return AssertionError(f"timed out after {self.timeout}s waiting for {self.what}")


def wait_until(condition: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    """Block until ``condition()`` is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = Deadline(timeout, what or getattr(condition, "__name__", "a condition"))
    while not condition():
        if deadline.passed():
            raise deadline.fail()
        time.sleep(POLL)


async def wait_until_async(
    condition: Callable[[], object], timeout: float = 20.0, what: str = ""
) -> None:
    """:func:`wait_until` for a coroutine: polls without blocking the event loop."""
    deadline = Deadline(timeout, what or getattr(condition, "__name__", "a condition"))
    while not condition():
        if deadline.passed():
            raise deadline.fail()
        await asyncio.sleep(POLL)


def async_test(func: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an ``async def`` test in a fresh event loop (the suite has no asyncio plugin)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(func(*args, **kwargs))

    return wrapper
