from __future__ import annotations

import asyncio

from listend.daemon.retry.backoff import Backoff


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


def test_wait_honours_at_least():
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    backoff = Backoff(initial=1, rng=lambda: 0.0, sleep=fake_sleep)
    assert asyncio.run(backoff.wait(at_least=3)) == 3
    assert slept == [3]
