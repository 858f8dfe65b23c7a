"""Stream sessions against listend.testing through the real SDK: replay, keepalive, flush."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from listend.daemon.events import MetadataEvent
from listend.testing import DeepgramTestServer, Script, interleave
from tests.support.sessions import (
    Collector,
    MemorySource,
    covers,
    make_session,
    source_ranges,
    watermark,
)
from tests.support.waiting import wait_until_async

RATE = 16000
BPS = RATE * 2


def test_sixty_seconds_through_three_drops_every_word_once():
    script = Script().generate(60, seed=7)
    pcm = watermark(script.pcm())

    async def main():
        async with DeepgramTestServer() as dg:
            dg.faults.drop(after_bytes=15 * BPS, code=1006)
            dg.faults.drop(after_bytes=12 * BPS, code=1011)
            dg.faults.drop(after_bytes=14 * BPS, code=1011).refuse(2, status=503)
            sink = Collector()
            session = make_session(dg, MemorySource(pcm), sink, options={"interim_results": True})
            async with asyncio.timeout(120):
                await session.run()
            return dg, session, sink

    dg, session, sink = asyncio.run(main())
    assert session.failure is None
    assert sink.final_words() == script.words
    starts = [e.start for e in sink.finals()]
    assert starts == sorted(starts)
    assert len(set(starts)) == len(starts)
    word_starts = [w.start for e in sink.finals() for w in e.words]
    assert all(a < b for a, b in itertools.pairwise(word_starts))
    expected = [span.start for span in script.spans]
    assert word_starts == pytest.approx(expected, abs=1e-3)  # source time across reconnects
    assert [c.close_code for c in dg.connections] == [1006, 1011, 1011, 1000]
    assert [r.status for r in dg.refusals] == [503, 503]
    assert covers(source_ranges(pcm, [bytes(c.audio) for c in dg.connections]), len(pcm))
    assert session.stats.reconnects == 3
    assert session.stats.gap_seconds == 0
    ids = [e.id for e in sink.events]
    assert len(set(ids)) == len(ids)
    assert [e.seq for e in sink.events] == list(range(1, len(sink.events) + 1))


def test_live_source_replays_after_a_drop_with_the_right_offsets():
    script = Script().say("alpha bravo charlie delta").say("echo foxtrot golf hotel india")
    pcm = script.pcm()

    async def main():
        async with DeepgramTestServer() as dg:
            dg.faults.drop(after_bytes=int(1.5 * BPS), code=1011)
            sink = Collector()
            session = make_session(dg, MemorySource(pcm, realtime=True), sink)
            async with asyncio.timeout(60):
                await session.run()
            return dg, sink

    dg, sink = asyncio.run(main())
    assert sink.final_words() == script.words
    spans = [t for e in sink.finals() for w in e.words for t in (w.start, w.end)]
    assert spans == pytest.approx([t for s in script.spans for t in (s.start, s.end)], abs=1e-3)
    assert len(dg.connections) == 2


def test_quiet_source_is_kept_alive():
    script = Script().say("before the pause", then_silence=0.3)
    pcm = script.pcm() + Script().say("after the pause").pcm()

    async def main():
        async with DeepgramTestServer(idle_timeout=2.0) as dg:
            sink = Collector()
            source = MemorySource(pcm, realtime=True, pauses={len(script.pcm()): 4.0})
            session = make_session(dg, source, sink, keepalive_interval=0.4)
            async with asyncio.timeout(60):
                await session.run()
            return dg, session, sink

    dg, session, sink = asyncio.run(main())
    assert len(dg.connections) == 1
    conn = dg.connections[0]
    assert conn.close_code == 1000
    assert conn.control_types.count("KeepAlive") >= 3
    assert conn.control_types[-2:] == ["Finalize", "CloseStream"]
    assert session.stats.keepalives == conn.control_types.count("KeepAlive")
    assert " ".join(sink.final_words()) == "before the pause after the pause"


@pytest.mark.slow
def test_thirty_seconds_of_silence_with_a_ten_second_idle_timeout():
    head = Script().say("still there", then_silence=0.2).pcm()
    pcm = head + Script().say("yes still here").pcm()

    async def main():
        async with DeepgramTestServer(idle_timeout=10.0) as dg:
            sink = Collector()
            source = MemorySource(pcm, realtime=True, pauses={len(head): 30.0})
            session = make_session(dg, source, sink)  # keepalive_interval: the default 5 s
            async with asyncio.timeout(90):
                await session.run()
            return dg, sink

    dg, sink = asyncio.run(main())
    assert [c.close_code for c in dg.connections] == [1000]  # never 1011 NET-0001
    assert dg.connections[0].control_types.count("KeepAlive") >= 5
    assert " ".join(sink.final_words()) == "still there yes still here"


def test_stop_mid_utterance_flushes_the_last_words():
    script = Script(char_ms=80).say("the last words before stopping matter", then_silence=0)

    async def main():
        async with DeepgramTestServer() as dg:
            sink = Collector()
            source = MemorySource(script.pcm(), realtime=True)
            session = make_session(dg, source, sink)
            task = asyncio.create_task(session.run())
            await wait_until_async(lambda: source.yielded >= int(1.4 * BPS), 30, "1.4 s captured")
            session.stop()
            async with asyncio.timeout(30):
                await task
            return dg, source, sink

    dg, source, sink = asyncio.run(main())
    conn = dg.connections[0]
    assert conn.control_types == ["Finalize", "CloseStream"]
    assert conn.bytes_received == source.yielded  # everything captured before stop was sent
    heard = source.yielded / BPS
    complete = [s.word for s in script.spans if s.end <= heard]
    words = sink.final_words()
    assert words[: len(complete)] == complete
    assert len(words) <= len(complete) + 1  # plus the word cut by the stop, if any
    assert sink.finals()[-1].from_finalize


def test_bearer_access_token(caplog):
    async def main():
        async with DeepgramTestServer(access_tokens=["temporary"]) as dg:
            sink = Collector()
            pcm = Script().say("token works").pcm()
            session = make_session(dg, MemorySource(pcm), sink, authorization="Bearer temporary")
            await session.run()
            return dg, sink

    dg, sink = asyncio.run(main())
    assert dg.connections[0].authorization == "Bearer temporary"
    assert sink.final_words() == ["token", "works"]


def test_wrong_key_fails_once_without_retrying():
    async def main():
        async with DeepgramTestServer() as dg:
            session = make_session(
                dg,
                MemorySource(Script().say("nobody hears").pcm()),
                Collector(),
                authorization="Token wrong",
            )
            async with asyncio.timeout(10):
                await session.run()
            return dg, session

    dg, session = asyncio.run(main())
    assert len(dg.refusals) == 1
    assert session.failure is not None
    assert session.failure.exit_code == 77
    assert "INVALID_AUTH" in str(session.failure)
    assert "dg-request-id " + dg.refusals[0].request_id in str(session.failure)


def test_undecodable_audio_close_1008_is_not_retried():
    async def main():
        async with DeepgramTestServer() as dg:
            dg.faults.drop(after_bytes=1, code=1008, reason="DATA-0000")
            session = make_session(dg, MemorySource(Script().say("garbage").pcm()), Collector())
            async with asyncio.timeout(10):
                await session.run()
            return dg, session

    dg, session = asyncio.run(main())
    assert len(dg.connections) == 1
    assert "1008" in str(session.failure)


def test_outage_longer_than_the_buffer_is_a_counted_gap(caplog):
    script = Script().generate(5, seed=1)

    async def main():
        async with DeepgramTestServer() as dg:
            dg.faults.drop(after_bytes=BPS, code=1006).refuse(1, status=429, retry_after=2.5)
            sink = Collector()
            source = MemorySource(script.pcm(), realtime=True)
            session = make_session(dg, source, sink, replay_buffer_seconds=1.0)
            async with asyncio.timeout(60):
                await session.run()
            return session, sink

    with caplog.at_level(logging.ERROR, logger="listend.daemon.stream.session"):
        session, sink = asyncio.run(main())
    assert session.stats.gap_seconds > 0.5
    assert any("audio lost" in r.getMessage() for r in caplog.records)
    words = sink.final_words()
    assert 0 < len(words) < len(script.words)
    tail = script.words[len(script.words) - len(words) :]  # the audio after the gap, in full
    assert words[1:] == tail[1:]
    assert tail[0].endswith(words[0])  # the first may be cut where the buffer was trimmed
    starts = [w.start for e in sink.finals() for w in e.words]
    assert starts == sorted(starts)


def test_metadata_and_vad_events_become_events():
    script = Script().say("metadata please", then_silence=1.5)

    async def main():
        async with DeepgramTestServer() as dg:
            sink = Collector()
            options = {"vad_events": True, "utterance_end_ms": 1000, "interim_results": True}
            session = make_session(dg, MemorySource(script.pcm()), sink, options=options)
            await session.run()
            return sink

    sink = asyncio.run(main())
    kinds = [e.kind for e in sink.events]
    assert kinds[0] == "speech_started"
    assert "interim" in kinds
    assert "utterance_end" in kinds
    assert kinds[-1] == "metadata"
    meta = sink.events[-1]
    assert isinstance(meta, MetadataEvent)
    assert meta.duration == pytest.approx(script.duration)
    assert sink.final_words() == script.words
    final = sink.finals()[0]
    assert final.request_id == meta.request_id


def test_multichannel_tracks_each_channel_across_a_reconnect():
    left = Script().say("left channel speaks first").say("and then once more")
    right = Script().silence(0.5).say("right channel answers").say("then stops")
    pcm = interleave(left, right)

    async def main():
        async with DeepgramTestServer() as dg:
            dg.faults.drop(after_bytes=2 * 2 * BPS, code=1011)
            sink = Collector()
            source = MemorySource(pcm, channels=2, realtime=True)
            session = make_session(dg, source, sink, options={"multichannel": True})
            async with asyncio.timeout(60):
                await session.run()
            return dg, session, sink

    dg, session, sink = asyncio.run(main())
    by_channel = {0: [], 1: []}
    for event in sink.finals():
        by_channel[event.channel] += [w.word for w in event.words]
    assert by_channel[0] == left.words
    assert by_channel[1] == right.words
    assert len(dg.connections) == 2
    assert session.stats.gap_seconds == 0


def test_a_stalled_server_catches_up_on_the_same_connection():
    script = Script().say("stall here").say("and carry on afterwards")

    async def main():
        async with DeepgramTestServer() as dg:
            dg.faults.stall(after_bytes=BPS, seconds=2.0)
            sink = Collector()
            session = make_session(dg, MemorySource(script.pcm(), realtime=True), sink)
            async with asyncio.timeout(60):
                await session.run()
            return dg, sink

    dg, sink = asyncio.run(main())
    assert [c.close_code for c in dg.connections] == [1000]
    assert sink.final_words() == script.words


def test_stop_while_deepgram_is_unreachable_reports_what_was_not_transcribed(caplog):
    async def main():
        async with DeepgramTestServer() as dg:
            dg.faults.refuse(1000, status=503)
            source = MemorySource(Script().generate(10).pcm(), realtime=True)
            session = make_session(dg, source, Collector(), finalize_timeout=0.5)
            task = asyncio.create_task(session.run())
            await wait_until_async(
                lambda: source.yielded >= BPS, 30, "a second of audio captured in the outage"
            )
            session.stop()
            async with asyncio.timeout(10):  # bounded by 2 x finalize_timeout, not the outage
                await task
            return session

    with caplog.at_level(logging.ERROR, logger="listend.daemon.stream.session"):
        session = asyncio.run(main())
    assert session.stats.gap_seconds > 0.5
    assert any("never transcribed" in r.getMessage() for r in caplog.records)


def test_every_stream_option_reaches_the_query():
    options = {
        "language": "en-US",
        "punctuate": True,
        "smart_format": True,
        "diarize": True,
        "endpointing": False,
        "interim_results": True,
        "utterance_end_ms": 1500,
        "vad_events": True,
        "keyterm": ["listend"],
        "keywords": ["kitchen:2", "lights"],
        "search": ["alarm"],
        "redact": ["pci", "ssn"],
        "numerals": True,
        "replace": ["colour:color"],
        "tag": ["hall"],
        "extra": {"room": "hall"},
        "multichannel": False,
        "profanity_filter": False,
    }

    async def main():
        async with DeepgramTestServer() as dg:
            pcm = Script(sample_rate=8000).say("options").pcm()
            source = MemorySource(pcm, sample_rate=8000)
            await make_session(dg, source, Collector(), options=options).run()
            return dg.connections[0]

    conn = asyncio.run(main())
    query: dict[str, list[str]] = {}
    for key, value in conn.query:
        query.setdefault(key, []).append(value)
    assert query["model"] == ["nova-3"]
    assert (query["encoding"], query["sample_rate"], query["channels"]) == (
        ["linear16"],
        ["8000"],
        ["1"],
    )
    assert query["endpointing"] == ["false"]
    assert query["keywords"] == ["kitchen:2", "lights"]
    assert query["redact"] == ["pci", "ssn"]
    assert query["extra"] == ["room:hall"]
    assert query["utterance_end_ms"] == ["1500"]
    for key in ("language", "punctuate", "smart_format", "diarize", "keyterm", "search"):
        assert key in query, key
    for key in ("numerals", "replace", "tag", "vad_events", "multichannel", "profanity_filter"):
        assert key in query, key
    assert conn.params.endpointing is None
    assert conn.params.sample_rate == 8000


class FloodSource(MemorySource):
    """A live source (never waited for) that delivers far faster than real time."""

    def __init__(self, pcm: bytes) -> None:
        super().__init__(pcm, chunk_ms=20)
        self.realtime = True  # live: the session drops the oldest audio instead of waiting

    async def stream(self):
        for offset in range(0, len(self.pcm), self.chunk):
            piece = self.pcm[offset : offset + self.chunk]
            self.yielded += len(piece)
            yield piece
            await asyncio.sleep(0)


def test_replay_buffer_stays_bounded_when_a_fast_live_source_outruns_an_outage():
    """Deepgram down, 60 s of audio in 20 ms chunks (3000 chunks) into a 1 s buffer: the
    buffer's own bookkeeping (data, capture stamps, timeline) stays at one buffer's worth."""

    async def main():
        async with DeepgramTestServer() as dg:
            dg.faults.refuse(100000, status=503)
            source = FloodSource(bytes(60 * BPS))
            session = make_session(dg, source, Collector(), replay_buffer_seconds=1.0)
            task = asyncio.create_task(session.run())
            await wait_until_async(
                lambda: source.yielded >= len(source.pcm), 60, "all the audio captured"
            )
            buffer = session.buffer
            sizes = (len(buffer._data), len(buffer._stamps), len(buffer.timeline.segments))
            session.stop()
            async with asyncio.timeout(30):
                await task
            return buffer.capacity, source.chunk, sizes

    capacity, chunk, (data, stamps, segments) = asyncio.run(main())
    assert data <= capacity
    assert stamps <= capacity // chunk + 2  # before the fix: one per chunk, 3000
    assert segments <= 2
