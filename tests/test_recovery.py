"""Recovering from outages in a stream session (real SDK, listend.testing): which failures
reset the backoff, Retry-After, catching a backlog up at the shipped ``catchup_speed``."""

from __future__ import annotations

import asyncio

import pytest

from listend.daemon.retry.backoff import Backoff
from listend.testing import DeepgramTestServer, Script
from tests.support.sessions import Collector, MemorySource, make_session, source_ranges, watermark
from tests.support.waiting import wait_until_async

BPS = 32000


def recorded_backoff(asked: list[float]) -> Backoff:
    """The shipped policy with its ceilings as the delays (rng=1) and no real waiting."""

    async def sleep(seconds: float) -> None:
        asked.append(seconds)

    return Backoff(stable_after=Backoff().stable_after, rng=lambda: 1.0, sleep=sleep)


def test_an_answered_connection_resets_the_backoff_an_instant_drop_does_not():
    script = Script().say("one two three four five six seven eight nine ten")
    asked: list[float] = []

    async def main() -> tuple[DeepgramTestServer, Collector]:
        async with DeepgramTestServer() as dg:
            dg.faults.refuse(2)  # refused twice: 0.5 s, then 1 s
            dg.faults.drop(after_bytes=BPS, code=1011)  # answered (results came), then dropped
            dg.faults.drop(after_seconds=0).drop(after_seconds=0)  # accepted, dropped at once
            sink = Collector()
            source = MemorySource(script.pcm())
            session = make_session(dg, source, sink, options={"interim_results": True})
            session.backoff = recorded_backoff(asked)
            async with asyncio.timeout(60):
                await session.run()
            return dg, sink

    dg, sink = asyncio.run(main())
    assert asked == [0.5, 1.0, 0.5, 1.0, 2.0]  # the blip starts over; flapping backs off
    assert dg.connections[0].sent, "the answered connection did get results"
    assert [c.bytes_received for c in list(dg.connections)[1:3]] == [0, 0]
    assert sink.final_words() == script.words


def test_retry_after_reaches_the_wait():
    script = Script().say("come back later")
    asked: list[float] = []

    async def main() -> Collector:
        async with DeepgramTestServer() as dg:
            dg.faults.refuse(status=429, err_code="TOO_MANY_REQUESTS", retry_after=7)
            dg.faults.refuse(status=503, retry_after=0.2)  # below the backoff: the backoff wins
            sink = Collector()
            session = make_session(dg, MemorySource(script.pcm()), sink)
            session.backoff = recorded_backoff(asked)
            async with asyncio.timeout(60):
                await session.run()
            return sink

    sink = asyncio.run(main())
    assert asked == [7.0, 1.0]
    assert sink.final_words() == script.words


@pytest.mark.slow
def test_a_backlog_catches_up_with_the_shipped_catchup_speed():
    """Six seconds down, then the backlog reaches the server faster than the source adds to
    it: by the time two more seconds were captured, the server is past the reconnect point."""
    script = Script().generate(12, seed=5)
    pcm = watermark(script.pcm())
    outage = 6 * BPS

    async def main() -> tuple[list[tuple[int, int]], int, Collector]:
        async with DeepgramTestServer() as dg:
            dg.faults.drop(after_bytes=BPS, code=1011)
            source = MemorySource(pcm, realtime=True)
            sink = Collector()
            session = make_session(dg, source, sink, fast_backoff=False)

            async def down_until_captured(_seconds: float) -> None:
                """The outage: over once the source has captured six more seconds."""
                until = source.yielded + outage
                await wait_until_async(lambda: source.yielded >= until, 60, "6 s captured")

            session.backoff = Backoff(sleep=down_until_captured)
            task = asyncio.create_task(session.run())
            await dg.wait_for_connections(2)
            reconnected_at = source.yielded
            await wait_until_async(
                lambda: source.yielded >= reconnected_at + 2 * BPS, 60, "2 s more captured"
            )
            received = bytes(dg.connections[1].audio)
            async with asyncio.timeout(60):
                await task
            return source_ranges(pcm, [received]), reconnected_at, sink

    ranges, reconnected_at, sink = asyncio.run(main())
    (start, reached) = ranges[0]
    assert reconnected_at - start >= outage  # the new connection had >= 6 s to catch up
    assert reached >= reconnected_at + BPS  # ... and is past it while the source adds 2 s
    assert sink.final_words() == script.words
