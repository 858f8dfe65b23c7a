"""The one outage logger and the one retry loop: a warning per outage, the recovery's length."""

from __future__ import annotations

import asyncio
import logging

import pytest

from listend.daemon.retry.backoff import Backoff
from listend.daemon.retry.outage import Outage
from listend.daemon.retry.retrying import retrying

log = logging.getLogger("test.outage")


def levels(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == log.name]


def test_one_warning_per_outage_and_its_length_at_the_end(caplog):
    caplog.set_level(logging.DEBUG, logger=log.name)
    now = [100.0]
    outage = Outage("sink m", recovered="reconnected", logger=log, clock=lambda: now[0])
    outage.failed("refused")
    for _ in range(4):
        now[0] += 3.075
        outage.failed("still refused")
    assert outage.down
    assert outage.up() is True
    assert outage.up() is False, "the end of an outage is logged once"
    assert levels(caplog) == [
        (logging.WARNING, "sink m: refused; retrying with backoff"),
        *[(logging.DEBUG, f"sink m: still refused (attempt {n} failed)") for n in (2, 3, 4, 5)],
        (logging.INFO, "sink m: reconnected after 12.3 s (5 failed attempts)"),
    ]
    assert (outage.outages, outage.failures, outage.last_error) == (1, 5, "still refused")

    outage.failed("refused again")  # stable_after=0: any recovery ended the last one
    assert outage.outages == 2
    assert levels(caplog)[-1] == (logging.WARNING, "sink m: refused again; retrying with backoff")


def test_a_recovery_that_does_not_last_is_the_same_outage(caplog):
    caplog.set_level(logging.DEBUG, logger=log.name)
    now = [0.0]
    outage = Outage("source x", stable_after=30, logger=log, clock=lambda: now[0])
    outage.failed("gone")
    outage.up()
    now[0] = 10
    outage.failed("gone again")  # up for 10 s < 30 s: flapping, not a new outage
    now[0] = 20
    outage.up()
    now[0] = 60
    outage.failed("gone after a stable minute")
    warnings = [m for level, m in levels(caplog) if level == logging.WARNING]
    assert warnings == [
        "source x: gone; retrying with backoff",
        "source x: gone after a stable minute; retrying with backoff",
    ]
    assert outage.outages == 2


def test_an_outage_reported_elsewhere_logs_only_its_attempts_and_end(caplog):
    caplog.set_level(logging.DEBUG, logger=log.name)
    now = [50.0]
    outage = Outage("source s: Deepgram", recovered="reachable again", since=20.0,
                    logger=log, clock=lambda: now[0])  # fmt: skip
    outage.failed("refused")
    outage.up()
    assert [level for level, _ in levels(caplog)] == [logging.DEBUG, logging.INFO]
    assert (
        levels(caplog)[-1][1]
        == "source s: Deepgram: reachable again after 30.0 s (1 failed attempts)"
    )


def test_retrying_backs_off_until_the_attempt_works(caplog):
    caplog.set_level(logging.DEBUG, logger=log.name)
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    backoff = Backoff(initial=1, cap=4, rng=lambda: 1.0, sleep=sleep, clock=lambda: now[0])
    outage = Outage("x", logger=log, clock=lambda: now[0])
    results = iter([OSError("refused"), OSError("refused"), OSError("refused"), "conn"])

    async def attempt() -> str:
        result = next(results)
        if isinstance(result, Exception):
            raise result
        return result

    got = asyncio.run(retrying(attempt, backoff=backoff, outage=outage, describe=repr))
    assert got == "conn"
    assert slept == [1, 2, 4]
    assert outage.up()
    assert levels(caplog)[0] == (logging.WARNING, "x: OSError('refused'); retrying with backoff")
    assert levels(caplog)[-1] == (logging.INFO, "x: recovered after 7.0 s (3 failed attempts)")


def test_retrying_lets_cancellation_and_base_exceptions_through():
    async def cancelled() -> None:
        raise asyncio.CancelledError

    backoff = Backoff(sleep=lambda _s: asyncio.sleep(0))
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(retrying(cancelled, backoff=backoff, outage=Outage("x")))
    assert backoff.attempt == 0, "no retry after a cancellation"
