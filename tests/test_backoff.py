from __future__ import annotations

import asyncio

import pytest

from listend.daemon.retry.backoff import Backoff
from listend.daemon.tasks import cancel_and_wait


def test_full_jitter_is_capped():
    backoff = Backoff(initial=1, cap=8, rng=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    backoff = Backoff(initial=1, cap=8, rng=lambda: 0.25)
    assert backoff.next_delay() == 0.25


def test_reset_only_after_stable_period():
    now = [0.0]
    backoff = Backoff(initial=1, cap=8, stable_after=10, rng=lambda: 1.0, clock=lambda: now[0])
    backoff.next_delay()
    backoff.next_delay()
    backoff.connected()
    now[0] = 5
    backoff.failed()
    assert backoff.next_delay() == 4  # a flapping connection keeps backing off
    backoff.connected()
    now[0] = 20
    backoff.failed()
    assert backoff.next_delay() == 1


def test_a_connection_that_was_answered_resets_the_next_failure():
    now = [0.0]
    backoff = Backoff(initial=1, cap=8, stable_after=30, rng=lambda: 1.0, clock=lambda: now[0])
    for _ in range(3):
        backoff.next_delay()
    backoff.connected()
    now[0] = 2  # long before stable_after: only the answer proves it healthy
    backoff.healthy()
    backoff.failed()
    assert backoff.next_delay() == 1  # a blip retries from the first delay
    backoff.failed()
    assert backoff.next_delay() == 2  # ... and a refusal after it backs off again


def test_accepting_and_failing_at_once_backs_off_to_the_cap():
    backoff = Backoff(initial=0.5, cap=30, stable_after=5, rng=lambda: 1.0, clock=lambda: 0.0)
    ceilings = []
    for _ in range(9):
        backoff.connected()  # accepted ...
        backoff.failed()  # ... and dropped before any answer
        ceilings.append(backoff.ceiling)
        backoff.next_delay()
    assert ceilings == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_healthy_counts_only_for_what_is_up():
    backoff = Backoff(initial=1, cap=8, rng=lambda: 1.0, clock=lambda: 0.0)
    backoff.next_delay()
    backoff.healthy()  # nothing connected(): a stale signal changes nothing
    backoff.failed()
    assert backoff.ceiling == 2
    backoff.connected()
    backoff.healthy()
    backoff.failed()
    assert backoff.ceiling == 1
    backoff.next_delay()
    backoff.failed()  # the healthy connection is over: its answer does not reset again
    assert backoff.ceiling == 2


def test_wait_honours_at_least():
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    backoff = Backoff(initial=1, rng=lambda: 0.0, sleep=fake_sleep)
    assert asyncio.run(backoff.wait(at_least=3)) == 3
    assert slept == [3]


class BlockingSleep:
    """An injected sleep that lasts until the test says so (no wall clock)."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.started = asyncio.Event()
        self.done = asyncio.Event()
        self.cancelled = False

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        self.started.set()
        try:
            await self.done.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


def test_a_stop_cuts_the_wait_short():
    async def run() -> tuple[bool, BlockingSleep]:
        sleep = BlockingSleep()
        backoff = Backoff(initial=4, rng=lambda: 1.0, sleep=sleep)
        stop = asyncio.Event()
        waiting = asyncio.create_task(backoff.wait_unless(stop))
        await sleep.started.wait()
        stop.set()
        return await waiting, sleep

    cut, sleep = asyncio.run(run())
    assert cut is True
    assert sleep.asked == [4]
    assert sleep.cancelled, "the sleep does not linger after the stop"


def test_a_wait_without_stop_runs_to_its_end():
    async def run() -> tuple[bool, bool, list[float]]:
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        backoff = Backoff(initial=1, rng=lambda: 1.0, sleep=sleep)
        full = await backoff.wait_unless(asyncio.Event(), at_least=3)
        unstoppable = await backoff.wait_unless(None, at_most=0.5)
        return full, unstoppable, slept

    assert asyncio.run(run()) == (False, False, [3, 0.5])


def test_an_already_set_stop_does_not_wait():
    async def run() -> bool:
        sleep = BlockingSleep()
        stop = asyncio.Event()
        stop.set()
        return await Backoff(sleep=sleep).wait_unless(stop)

    assert asyncio.run(run()) is True


def test_cancelling_the_waiter_propagates():
    async def run() -> BlockingSleep:
        sleep = BlockingSleep()
        backoff = Backoff(sleep=sleep)
        waiting = asyncio.create_task(backoff.wait_unless(asyncio.Event()))
        await sleep.started.wait()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert waiting.cancelled()
        return sleep

    assert asyncio.run(run()).cancelled


def test_cancel_and_wait_does_not_swallow_the_callers_cancellation():
    async def run() -> None:
        release = asyncio.Event()

        async def stubborn() -> None:  # takes a while to end once cancelled
            try:
                await asyncio.Event().wait()
            finally:
                await release.wait()

        child = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        stopping = asyncio.create_task(cancel_and_wait(child))
        await asyncio.sleep(0)
        stopping.cancel()  # the caller itself is cancelled while it waits
        with pytest.raises(asyncio.CancelledError):
            await stopping
        release.set()
        await asyncio.wait({child})
        assert child.cancelled()

        finished = asyncio.create_task(asyncio.sleep(0))
        await finished
        await cancel_and_wait(finished)  # already done: returns quietly

        async def broken() -> None:
            raise KeyError("bug")

        failed = asyncio.create_task(broken())
        await asyncio.wait({failed})
        with pytest.raises(KeyError):
            await cancel_and_wait(failed)  # the task's own error is not hidden

    asyncio.run(run())
