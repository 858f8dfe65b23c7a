"""The stream session's retry schedule: its backoff while running, a short one once stopping."""

from __future__ import annotations

import asyncio

from listend.daemon.retry.backoff import Backoff
from listend.daemon.stream.schedule import DRAIN_CAP, RetrySchedule


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_stop_deadline_leaves_room_for_the_last_finalize():
    clock = Clock()
    schedule = RetrySchedule("hall", finalize_timeout=3, clock=clock)
    assert schedule.left() == float("inf")
    schedule.stop(15)  # the daemon's drain_timeout
    assert schedule.deadline == 109  # 15 s less Finalize + CloseStream (2 x 3 s)
    schedule.stop(1)  # a second stop does not move it
    assert schedule.deadline == 109
    clock.now = 108
    assert not schedule.out_of_time()
    assert schedule.left() == 1
    clock.now = 109
    assert schedule.out_of_time()

    default = RetrySchedule("hall", finalize_timeout=3, clock=clock)
    default.stop()
    assert default.deadline == clock.now + 6  # reload: 2 x finalize_timeout, as before
    short = RetrySchedule("hall", finalize_timeout=3, clock=clock)
    short.stop(4)
    assert short.deadline == clock.now + 2  # half of a short stop for the attempts


def record_sleeps(asked: list[float]) -> Backoff:
    async def sleep(seconds: float) -> None:
        asked.append(seconds)

    return Backoff(initial=1, cap=30, rng=lambda: 1.0, sleep=sleep)


def test_running_waits_use_the_backoff_and_retry_after():
    async def run() -> list[float]:
        asked: list[float] = []
        schedule = RetrySchedule("hall", finalize_timeout=3)
        backoff = record_sleeps(asked)
        stop = asyncio.Event()
        await schedule.wait(backoff, stop, retry_after=None)
        await schedule.wait(backoff, stop, retry_after=7.5)  # Retry-After over the backoff
        await schedule.wait(backoff, stop, retry_after=None, at_most=0.5)  # the fallback's turn
        return asked

    assert asyncio.run(run()) == [1, 7.5, 0.5]


def test_once_stopping_retries_come_quickly_until_the_deadline():
    async def run() -> tuple[list[float], list[float]]:
        clock = Clock()
        main: list[float] = []
        drain: list[float] = []
        schedule = RetrySchedule("hall", finalize_timeout=3, clock=clock)
        schedule.drain = record_sleeps(drain)
        schedule.drain.cap = DRAIN_CAP
        backoff = record_sleeps(main)
        backoff.attempt = 10  # a long outage: the backoff is at its cap
        stop = asyncio.Event()
        stop.set()
        schedule.stop(15)
        for _ in range(3):
            await schedule.wait(backoff, stop, retry_after=None)
        await schedule.wait(backoff, stop, retry_after=2)  # Retry-After still honoured
        clock.now += 8.5
        await schedule.wait(backoff, stop, retry_after=2)  # ... but not past the deadline
        return main, drain

    main, drain = asyncio.run(run())
    assert main == []  # the long backoff is not waited out
    assert drain == [1, 1, 1, 2, 0.5]
