"""`fallback: local`: Deepgram goes away, the local engine takes over, Deepgram comes back."""

from __future__ import annotations

import asyncio
from itertools import pairwise

import pytest

from listend.daemon.config.models import DeepgramConfig
from listend.daemon.events import TranscriptEvent
from listend.daemon.plugin.stream_options import StreamOptions
from listend.daemon.retry.backoff import Backoff
from listend.daemon.stream.endpoint import Endpoint
from listend.daemon.stream.session import StreamSession
from listend.dgproto.hooks import ServerHooks
from listend.testing import DeepgramTestServer, Recorder, Script
from tests.support.net import free_port
from tests.support.sessions import Collector, MemorySource, source_ranges, watermark
from tests.support.waiting import wait_until_async

pytestmark = [pytest.mark.xdist_group("local-engine"), pytest.mark.slow]

RATE = 16000
BPS = 2 * RATE  # bytes per second of mono 16-bit audio
SPEECH = (
    "the library closes at six on saturday",
    "what is the weather like today",
    "add eggs to the shopping list",
)


def seconds(offset: int) -> float:
    return offset / BPS


def test_outage_goes_to_the_local_engine_and_back(local_engine, engine_loop, speech):
    before = Script().say("turn on the kitchen lights", then_silence=1.0)
    during = b"".join(speech(s) + b"\x00\x00" * RATE for s in SPEECH)
    after = Script().say("good night", then_silence=1.0).say("thank you very much")
    pcm = watermark(before.pcm() + during + after.pcm() + b"\x00\x00" * 2 * RATE)
    port = free_port()
    recorder = Recorder()
    local_engine.protocol.hooks = recorder
    # The live source holds at the ends of `before` and `during` until the outage has begun
    # and until Deepgram is back, so each part reaches the engine the test means for it
    # however slowly a loaded machine transcribes (the local engine can lag real time).
    before_end = len(before.pcm())
    during_end = before_end + len(during)

    async def main():
        sink = Collector()
        outage, back = asyncio.Event(), asyncio.Event()
        first = await DeepgramTestServer(port=port).start()
        session = StreamSession(
            name="hall",
            device="test",
            source=MemorySource(pcm, realtime=True, holds={before_end: outage, during_end: back}),
            options=StreamOptions(model="nova-3", endpointing=300, interim_results=True),
            # KeepAlives while the source holds, well inside the local engine's idle timeout;
            # a finalize bound for an engine that is still catching up on a loaded machine.
            deepgram=DeepgramConfig(
                fallback_after=1.0, finalize_timeout=30.0, keepalive_interval=1.0
            ),
            endpoint=Endpoint(first.url, f"Token {first.api_key}"),
            publish=sink,
            fallback=Endpoint(local_engine.url, local_engine.authorization, engine="local"),
        )
        session.backoff = Backoff(initial=0.05, cap=0.3)
        assert session.fallback is not None
        session.fallback.probe_backoff = Backoff(initial=0.2, cap=0.5)
        running = asyncio.create_task(session.run())

        def texts(engine: str) -> list[TranscriptEvent]:
            return [e for e in sink.finals() if e.engine == engine and e.text]

        await wait_until_async(lambda: texts("deepgram"), 60, "a final from Deepgram")
        await first.stop()  # Deepgram goes away: connections drop, new ones are refused
        outage.set()
        await wait_until_async(
            lambda: len(texts("local")) >= 2, 120, "finals from the local engine"
        )
        second = await DeepgramTestServer(port=port).start()  # ... and comes back
        try:
            async with asyncio.timeout(60):
                await second.wait_for_connections(2)  # the probe, then the stream
            back.set()
            async with asyncio.timeout(120):
                await running
        finally:
            await second.stop()
        return sink, first, second

    sink, first, second = engine_loop.run(main(), timeout=170)
    local_records = [c for c in recorder.connections if c.audio]
    local_engine.protocol.hooks = ServerHooks()

    finals = [e for e in sink.finals() if e.text]
    engines = [e.engine for e in finals]
    # Deepgram, then the local engine meanwhile, then Deepgram again: one switch each way.
    assert engines[0] == "deepgram"
    assert engines[-1] == "deepgram"
    switches = [pair for pair in pairwise(engines) if pair[0] != pair[1]]
    assert switches == [("deepgram", "local"), ("local", "deepgram")]
    # No second of audio is transcribed twice: finals follow each other without overlapping.
    for earlier, later in pairwise(finals):
        assert earlier.end <= later.start + 0.001
    said_first = ["turn", "on", "the", "kitchen", "lights"]
    assert [w.word for e in finals if e.engine == "deepgram" for w in e.words][:5] == said_first
    assert [w.word for e in finals[-2:] for w in e.words] == [
        "good",
        "night",
        "thank",
        "you",
        "very",
        "much",
    ]

    # What each engine received and finalized, located in the source by its watermark.
    assert len(local_records) == 1
    (local_from, local_to) = source_ranges(pcm, [bytes(local_records[0].audio)])[0]
    local_finals = local_records[0].finals()
    assert local_finals[-1]["from_finalize"]  # ended by Finalize: it covers all it was sent
    covered = local_finals[-1]["start"] + local_finals[-1]["duration"]
    assert covered == pytest.approx(seconds(local_to - local_from), abs=0.01)
    # Deepgram's finals before the outage end exactly where the local engine starts ...
    dg_before = [c for c in first.connections if c.audio][-1]
    (dg_from, _dg_to) = source_ranges(pcm, [bytes(dg_before.audio)])[0]
    last = dg_before.finals()[-1]
    assert seconds(dg_from) + last["start"] + last["duration"] == pytest.approx(
        seconds(local_from), abs=0.001
    )
    # ... and Deepgram resumes at the local engine's last endpoint: the tail it was sent after
    # that (where a word may be cut in two) is not delivered from it but heard by Deepgram.
    back = [c for c in second.connections if c.audio]  # the others were probes
    assert len(back) == 1
    (back_from, back_to) = source_ranges(pcm, [bytes(back[0].audio)])[0]
    endpoint = [f for f in local_finals if f["speech_final"] and not f["from_finalize"]][-1]
    resumed = seconds(back_from - local_from)
    assert resumed == pytest.approx(endpoint["start"] + endpoint["duration"], abs=0.002)
    assert local_from < back_from <= local_to
    assert back_to == len(pcm)
    local_events = [e for e in sink.finals() if e.engine == "local"]
    assert local_events[-1].end == pytest.approx(seconds(back_from), abs=0.002)
