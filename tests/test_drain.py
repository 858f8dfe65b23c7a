"""The stop drain: what its deadline cuts off is reported, per source, in one line."""

from __future__ import annotations

import asyncio
import logging
import re

from listend.daemon.delivery.router import Router
from listend.daemon.service.drain import drain
from listend.testing import DeepgramTestServer, Script
from tests.support.sessions import Collector, MemorySource, make_session
from tests.support.waiting import wait_until_async

BPS = 32000


def test_a_drain_deadline_before_the_finals_reports_the_audio_never_transcribed(caplog):
    """finalize_timeout (10 s) > drain_timeout (0.5 s), Deepgram not answering the Finalize:
    the sessions are cancelled at the deadline, and the audio they held is named in one error
    line. (Refusing instead, each session would give up by itself before the deadline and
    say so.)"""

    async def main() -> None:
        async with DeepgramTestServer() as dg:
            for _ in range(2):  # each stream stops answering after half a second of audio
                dg.faults.stall(seconds=5, after_bytes=BPS // 2)
            sessions = {}
            async with asyncio.TaskGroup() as group:
                for name in ("hall", "door"):
                    source = MemorySource(Script().generate(10).pcm(), realtime=True)
                    session = make_session(dg, source, Collector(), finalize_timeout=10)
                    session.name = name
                    task = group.create_task(session.run(), name=f"source:{name}")
                    sessions[name] = (session, task, source)
                for _session, _task, source in sessions.values():
                    await wait_until_async(lambda s=source: s.yielded >= BPS, 30, "1 s captured")
                router = Router({}, {})
                router_task = group.create_task(router.run(), name="router")
                await drain(
                    sessions={n: (s, t) for n, (s, t, _) in sessions.items()},
                    router=(router, router_task),
                    workers={},
                    seconds=0.5,
                )

    with caplog.at_level(logging.ERROR, logger="listend.daemon.service.drain"):
        asyncio.run(main())
    [line] = [r.getMessage() for r in caplog.records if "never transcribed" in r.getMessage()]
    assert line.startswith("drain_timeout (0.5s) reached before the final transcripts")
    found = dict(re.findall(r"source (\w+) ([\d.]+)s", line))
    assert set(found) == {"door", "hall"}
    assert all(float(seconds) >= 1.0 for seconds in found.values())
