"""Pausing a source (the Home Assistant mute switch): its audio is read but never sent, so
nothing of it is transcribed or billed, and what follows a resume keeps its source time."""

from __future__ import annotations

import asyncio

import pytest

from listend.testing import DeepgramTestServer, Script
from tests.support.sessions import Collector, MemorySource, make_session
from tests.support.waiting import async_test, wait_until_async

BPS = 32000


def part(text: str) -> bytes:
    return Script().say(text, then_silence=0.6).pcm()


@async_test
async def test_paused_audio_is_not_sent_and_resume_keeps_source_time():
    before, muted, after = part("kitchen lights on"), part("secret words"), part("good night")
    pcm = before + muted + after
    at_mute, at_resume = len(before), len(before) + len(muted)
    mute, resume = asyncio.Event(), asyncio.Event()
    source = MemorySource(pcm, holds={at_mute: mute, at_resume: resume})
    collector = Collector()
    async with DeepgramTestServer() as dg:
        session = make_session(dg, source, collector)
        run = asyncio.create_task(session.run())
        await wait_until_async(lambda: source.yielded == at_mute, what="the audio before mute")
        session.pause(True)
        mute.set()
        await wait_until_async(lambda: source.yielded == at_resume, what="the muted audio read")
        assert session.paused
        session.pause(False)
        resume.set()
        await asyncio.wait_for(run, 60)
        received = dg.received_audio()
    assert collector.final_words() == ["kitchen", "lights", "on", "good", "night"]
    assert len(received) == len(before) + len(after)  # the muted part never left the device
    assert session.stats.audio_seconds_sent * BPS == pytest.approx(len(received), abs=1)
    good = next(w for e in collector.finals() for w in e.words if w.word == "good")
    assert good.start >= at_resume / BPS  # in source time: the muted seconds still passed
