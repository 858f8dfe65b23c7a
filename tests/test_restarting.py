"""The shared restart loop: one warning per outage, backoff between attempts, clean endings."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator

import pytest

from listend.daemon.retry.backoff import Backoff
from listend.daemon.retry.restarting import RestartStats, SourceInterrupted, restarting


class Script:
    """Attempts that follow a plan: each entry is (items to yield, how the attempt ends)."""

    def __init__(self, plan: list[tuple[list[str], str]]) -> None:
        self.plan = plan
        self.started = 0
        self.closed = 0

    async def attempt(self) -> AsyncGenerator[str, None]:
        items, ending = self.plan[min(self.started, len(self.plan) - 1)]
        self.started += 1
        try:
            for item in items:
                yield item
            if ending == "fail":
                raise SourceInterrupted(f"attempt {self.started} failed")
            if ending == "hang":
                await asyncio.Event().wait()
        finally:
            self.closed += 1


def fake_backoff(now: list[float], slept: list[float]) -> Backoff:
    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    return Backoff(initial=1, cap=4, stable_after=30, rng=lambda: 1.0, sleep=sleep,
                   clock=lambda: now[0])  # fmt: skip


def run_script(script: Script, stats: RestartStats, now: list[float], slept: list[float]):
    backoff = fake_backoff(now, slept)
    clock = lambda: now[0]  # noqa: E731
    return restarting(script.attempt, label="source x", backoff=backoff, stats=stats, clock=clock)


async def take(script: Script, stats: RestartStats, slept: list[float], count: int) -> list[str]:
    got: list[str] = []
    async for item in run_script(script, stats, [0.0], slept):
        got.append(item)
        if len(got) == count:
            break
    return got


def test_failures_before_recovery_are_one_outage(caplog):
    caplog.set_level(logging.DEBUG, logger="listend.daemon.retry.restarting")
    script = Script([([], "fail"), ([], "fail"), ([], "fail"), (["a", "b"], "hang")])
    stats, slept = RestartStats(), []
    got = asyncio.run(take(script, stats, slept, 2))
    assert got == ["a", "b"]
    assert slept == [1, 2, 4], "capped exponential backoff between attempts"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["source x: attempt 1 failed; retrying with backoff until it is back"]
    assert "source x: resumed after 7.0 s (3 failed attempts)" in caplog.text
    assert (stats.up, stats.outages, stats.last_error) == (True, 1, "attempt 3 failed")


def test_a_flapping_source_is_one_outage_and_keeps_backing_off(caplog):
    caplog.set_level(logging.INFO)
    script = Script([(["a"], "fail")])
    stats, slept = RestartStats(), []
    asyncio.run(take(script, stats, slept, 5))
    assert slept == [1, 2, 4, 4], "up only briefly: the backoff is not reset"
    assert caplog.text.count("retrying with backoff") == 1
    assert caplog.text.count("resumed after") == 1
    assert stats.outages == 1


def test_a_source_that_was_stable_starts_a_new_outage(caplog):
    now: list[float] = [0.0]
    script = Script([(["a"], "fail")])
    stats, slept = RestartStats(), []

    async def run() -> None:
        async for _item in run_script(script, stats, now, slept):
            now[0] += 60  # each attempt stays up for a minute
            if script.started == 3:
                break

    asyncio.run(run())
    assert caplog.text.count("retrying with backoff") == 2
    assert slept == [1, 1], "a stable period resets the backoff"


def test_an_attempt_that_returns_ends_the_stream():
    script = Script([(["a"], "fail"), (["b"], "end")])
    stats = RestartStats()

    async def run() -> list[str]:
        backoff = fake_backoff([0.0], [])
        return [
            i async for i in restarting(script.attempt, label="x", backoff=backoff, stats=stats)
        ]

    assert asyncio.run(run()) == ["a", "b"]
    assert stats.up is False
    assert script.closed == 2


def test_other_errors_and_cancellation_propagate():
    async def broken() -> AsyncGenerator[str, None]:
        yield "a"
        raise KeyError("bug")

    async def run_broken() -> None:
        backoff = fake_backoff([0.0], [])
        async for _ in restarting(broken, label="x", backoff=backoff, stats=RestartStats()):
            pass

    with pytest.raises(KeyError):
        asyncio.run(run_broken())

    script = Script([(["a"], "hang")])

    async def cancel_while_streaming() -> None:
        backoff = fake_backoff([0.0], [])
        gen = restarting(script.attempt, label="x", backoff=backoff, stats=RestartStats())
        task = asyncio.create_task(anext(gen))
        assert await task == "a"
        task = asyncio.create_task(anext(gen))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await gen.aclose()

    asyncio.run(cancel_while_streaming())
    assert script.closed == 1, "the attempt's cleanup ran"
