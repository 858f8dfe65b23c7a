"""Voice-activity gating: only speech is streamed, and no word or timestamp is lost for it.

The audio is real speech: :class:`SpokenScript` synthesizes each word with espeak-ng (WebRTC's
VAD must hear it as speech, which the scripted PCM patterns are not) over quiet noise. The
server's :class:`SpokenRecognizer` knows the script and locates every received byte in the
source, so it hears a word only if *all* of that word's samples were streamed, and it reports
times on the connection's clock as Deepgram does. A gate that opens late cuts the onset of the
first word, and the word is lost; a wrong stream->source map shifts the times. The same audio
streamed without a gate is the reference for words and times.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from listend.daemon.errors import ConfigError
from listend.daemon.events import TranscriptEvent
from listend.daemon.plugin.source import AudioFormat, SourceConfig, VadConfig
from listend.daemon.stream.timeline import Timeline
from listend.daemon.stream.voice_gate import VoiceGate
from listend.testing import DeepgramTestServer, running_server
from listend.testing.spoken import SpokenScript
from tests.support.cli import listend_cmd
from tests.support.paths import ROOT
from tests.support.sessions import Collector, MemorySource, config_text, make_session

RATE = 16000
BPS = 2 * RATE


@pytest.fixture(scope="module")
def room() -> SpokenScript:
    """Mostly silence: four utterances in 40 s, the first one right after a long quiet."""
    return (
        SpokenScript(seed=3)
        .silence(6)
        .say("turn on the kitchen lights")
        .silence(9)
        .say("feed the cat please")
        .silence(7)
        .say("seven eight nine")
        .silence(8)
        .say("good night listend")
        .silence(5)
    )


def gated_source(pcm: bytes, vad: VadConfig | None, **kwargs) -> MemorySource:
    source = MemorySource(pcm, **kwargs)
    source.config = SourceConfig(type="memory", vad=vad)
    return source


async def transcribe(room: SpokenScript, pcm: bytes, vad: VadConfig | None, **deepgram):
    async with DeepgramTestServer(recognizer_factory=room.recognizer(pcm)) as dg:
        plan = deepgram.pop("plan", None)
        if plan is not None:
            plan(dg)
        sink = Collector()
        session = make_session(
            dg, gated_source(pcm, vad, realtime=deepgram.pop("realtime", False)), sink, **deepgram
        )
        async with asyncio.timeout(120):
            await session.run()
        return session, sink, dg


def word_times(sink: Collector) -> list[tuple[str, float, float]]:
    return [(w.word, w.start, w.end) for e in sink.finals() for w in e.words]


def test_every_word_of_a_mostly_silent_room_is_transcribed_with_ungated_times(room):
    pcm = room.pcm()

    async def main():
        return await transcribe(room, pcm, None), await transcribe(room, pcm, VadConfig())

    (_, ungated, _), (session, gated, dg) = asyncio.run(main())
    assert [w for w, _, _ in word_times(ungated)] == room.words  # the reference is complete
    assert [w for w, _, _ in word_times(gated)] == room.words  # first words included
    for (word, start, end), (_, ref_start, ref_end) in zip(
        word_times(gated), word_times(ungated), strict=True
    ):
        assert abs(start - ref_start) <= 0.05, word
        assert abs(end - ref_end) <= 0.05, word
    for event, reference in zip(gated.finals(), ungated.finals(), strict=False):
        assert event.text == reference.text
    stats = session.stats
    assert stats.audio_seconds_captured == pytest.approx(room.duration, abs=0.01)
    assert stats.audio_seconds_gated_in < 0.5 * stats.audio_seconds_captured
    assert stats.audio_seconds_sent == pytest.approx(stats.audio_seconds_gated_in)
    assert len(dg.received_audio()) == pytest.approx(stats.audio_seconds_sent * BPS)
    # the gate's closes were finalized right away, so finals did not wait for the next speech
    controls = dg.connections[0].control_types
    assert controls.count("Finalize") >= len(room.utterances) + 1  # + the final flush
    assert controls[-1] == "CloseStream"


def test_without_pre_roll_first_words_lose_their_onset(room):
    """The same check fails when the gate opens only once speech is detected: this is what
    pre-roll prevents (and shows the recognizer really needs every sample of a word)."""
    pcm = room.pcm()

    async def main():
        return await transcribe(room, pcm, VadConfig(pre_roll=0))

    _, sink, _ = asyncio.run(main())
    heard = [w for w, _, _ in word_times(sink)]
    assert heard != room.words
    assert set(heard) < set(room.words)


def test_a_reconnect_replays_only_gated_audio_and_keeps_source_times(room):
    pcm = room.pcm()
    gate = VoiceGate(AudioFormat(RATE), VadConfig(), "hall")
    passages = [p for i in range(0, len(pcm), 3200) for p in gate.feed(pcm[i : i + 3200])]
    passages += gate.flush()
    spans: list[tuple[int, int]] = []  # what the gate lets through, merged where contiguous
    for p in passages:
        if spans and spans[-1][1] == p.offset:
            spans[-1] = (spans[-1][0], p.offset + len(p.audio))
        elif p.audio:
            spans.append((p.offset, p.offset + len(p.audio)))
    streamed = sum(end - start for start, end in spans)

    def stream_at(seconds: float, *, span_end: bool = False) -> int:
        """Stream offset of a source time inside what the gate lets through (or of the end of
        the span it is in)."""
        offset, before = round(seconds * RATE) * 2, 0
        for start, end in spans:
            if start <= offset < end:
                return before + (end if span_end else offset) - start
            before += end - start
        raise AssertionError(f"{seconds}s is not streamed")

    first, second, fourth = room.spans[:5], room.spans[5:9], room.spans[12:15]
    assert [" ".join(s.word for s in u) for u in (first, second)] == room.utterances[:2]
    middle_of_second = (second[0].start + second[-1].end) / 2
    middle_of_fourth = (fourth[0].start + fourth[-1].end) / 2

    def plan(dg):
        # mid-utterance twice (audio goes out in messages of up to 0.5 s: inside a word or
        # between two words of the same utterance), so unfinished utterances are replayed
        dg.faults.drop(after_bytes=stream_at(middle_of_second), code=1006)
        # the 2nd connection resumes where the gate closed after the first utterance: the
        # Finalize sent there made everything before it final
        drop = stream_at(middle_of_fourth) - stream_at(first[-1].end, span_end=True)
        dg.faults.drop(after_bytes=drop, code=1011)

    async def main():
        return (
            await transcribe(room, pcm, None),
            await transcribe(room, pcm, VadConfig(), plan=plan),
        )

    (_, ungated, _), (session, sink, dg) = asyncio.run(main())
    assert session.stats.reconnects == 2
    for connection, words in zip(dg.connections, (second, fourth), strict=False):
        last = pcm.find(bytes(connection.audio[-64:]))
        assert words[0].start < last / BPS < words[-1].end  # it really dropped mid-utterance
    got, expected = word_times(sink), word_times(ungated)
    assert [w for w, _, _ in got] == [w for w, _, _ in expected] == room.words
    times = [t for _, start, end in got for t in (start, end)]
    assert times == pytest.approx([t for _, start, end in expected for t in (start, end)], abs=1e-3)
    ids = [e.id for e in sink.events]
    assert len(ids) == len(set(ids))
    for connection in dg.connections:  # every byte sent lies inside what the gate let through
        assert_within(pcm, bytes(connection.audio), spans)
    replayed = sum(c.bytes_received for c in dg.connections) - streamed
    assert 0 < replayed < streamed // 2  # resent what no final covered, not the silence


def assert_within(pcm: bytes, audio: bytes, spans: list[tuple[int, int]]) -> None:
    """``audio`` is a sequence of pieces of ``pcm``, each inside one of ``spans``."""
    done = 0
    while done < len(audio):
        at = pcm.find(audio[done : done + 64])
        while at % 2:
            at = pcm.find(audio[done : done + 64], at + 1)
        span = next(((a, b) for a, b in spans if a <= at < b), None)
        assert span is not None, f"sent audio from {at / BPS:.2f}s, which the gate kept out"
        length = min(span[1] - at, len(audio) - done)
        assert audio[done : done + length] == pcm[at : at + length]
        done += length


@pytest.mark.slow
def test_keepalive_holds_the_connection_through_gated_silence():
    room = SpokenScript(seed=5).silence(1).say("open the front door").silence(7)
    room.say("thank you", then_silence=1.5)
    pcm = room.pcm()

    async def main():
        async with DeepgramTestServer(recognizer_factory=room.recognizer(pcm)) as dg:
            dg.idle_timeout = 3.0  # it would close a stream that goes quiet for 3 s
            sink = Collector()
            source = gated_source(pcm, VadConfig(hang_over=0.5), realtime=True)
            session = make_session(dg, source, sink, keepalive_interval=1.0)
            async with asyncio.timeout(60):
                await session.run()
            return session, sink, dg

    session, sink, dg = asyncio.run(main())
    assert [w.word for e in sink.finals() for w in e.words] == room.words
    assert len(dg.connections) == 1
    assert dg.connections[0].close_code == 1000
    assert session.stats.keepalives >= 2
    # the first utterance was final long before the second began (Finalize at the close)
    first, *_ = (e for e in sink.finals() if e.words)
    assert first.text == "open the front door"
    assert session.stats.audio_seconds_sent < 0.7 * room.duration


def test_timeline_maps_both_ways_across_gaps():
    timeline = Timeline(BPS)
    timeline.jump(2 * BPS, 10 * BPS)  # stream 2 s on comes from source 10 s on
    timeline.jump(3 * BPS, 20 * BPS)
    assert timeline.to_source(1.5) == 1.5
    assert timeline.to_source(2.5) == 10.5
    assert timeline.to_source(2.0) == 10.0  # a start on a boundary: the later segment
    assert timeline.to_source(2.0, end=True) == 2.0  # an end on it: the earlier one
    assert timeline.to_source(2.0004, end=True) == 2.0  # Deepgram rounds to milliseconds
    assert timeline.to_source(3.25) == 20.25
    assert timeline.to_stream(1.0) == 1.0
    assert timeline.to_stream(5.0) == 2.0  # not streamed: where the stream resumed
    assert timeline.to_stream(10.5) == 2.5
    assert timeline.to_stream(15.0) == 3.0
    timeline.forget_before(int(2.5 * BPS))
    assert timeline.segments == [(2 * BPS, 10 * BPS), (3 * BPS, 20 * BPS)]
    assert timeline.to_source(2.5) == 10.5


def test_stereo_is_classified_as_its_downmix(room):
    mono = room.pcm()
    stereo = b"".join(mono[i : i + 2] * 2 for i in range(0, len(mono), 2))

    def passages(pcm: bytes, channels: int) -> list[tuple[int, int]]:
        gate = VoiceGate(AudioFormat(RATE, channels), VadConfig(), "hall")
        step = 3200 * channels
        found = [p for i in range(0, len(pcm), step) for p in gate.feed(pcm[i : i + step])]
        width = 2 * channels
        return [(p.offset // width, len(p.audio) // width) for p in found]

    assert passages(stereo, 2) == passages(mono, 1)


@pytest.mark.parametrize(
    ("fmt", "found"),
    [
        (AudioFormat(44100), "44100 Hz"),
        (AudioFormat(22050, 2), "22050 Hz"),
        (AudioFormat(16000, encoding="mulaw"), "mulaw"),
    ],
)
def test_formats_the_vad_cannot_read_are_config_errors(fmt, found):
    with pytest.raises(ConfigError, match=f"source hall: vad cannot gate.*{found}"):
        VoiceGate(fmt, VadConfig(), "hall")


def test_a_disabled_vad_streams_everything(room):
    pcm = room.pcm()[: 5 * BPS]

    async def main():
        return await transcribe(room, pcm, VadConfig(enabled=False))

    session, _, dg = asyncio.run(main())
    assert session.gate is None
    assert dg.received_audio() == pcm


def run_daemon_on(tmp_path: Path, dg_url: str, key: str, wav: Path, source_extra: str):
    config = tmp_path / "listend.yaml"
    config.write_text(
        config_text(dg_url, wav, extra_source="    realtime: false\n" + source_extra),
        encoding="utf-8",
    )
    return subprocess.run(
        listend_cmd("run", str(config)),
        capture_output=True,
        text=True,
        env={**os.environ, "DG_TEST_KEY": key},
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_vad_from_the_config_file_gates_the_daemon(tmp_path, room):
    wav = room.write_wav(tmp_path / "room.wav")
    pcm = room.pcm()
    with running_server(recognizer_factory=room.recognizer(pcm)) as dg:
        done = run_daemon_on(
            tmp_path, dg.url, dg.api_key, wav, "    vad: {aggressiveness: 3, pre_roll: 0.6}\n"
        )
        received = len(dg.received_audio())
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    finals = [TranscriptEvent.model_validate(e) for e in events if e.get("is_final")]
    assert [w.word for e in finals for w in e.words] == room.words
    assert received < 0.5 * len(pcm)


def test_unsupported_rate_with_vad_exits_78_before_connecting(tmp_path, room):
    wav = SpokenScript(sample_rate=22050).say("hello").write_wav(tmp_path / "cd.wav")
    with running_server() as dg:
        done = run_daemon_on(tmp_path, dg.url, dg.api_key, wav, "    vad: {}\n")
        assert not dg.connections
    assert done.returncode == 78
    assert "vad cannot gate" in done.stderr
    assert "Traceback" not in done.stderr
    checked = subprocess.run(
        listend_cmd("validate", str(tmp_path / "listend.yaml")),
        capture_output=True,
        text=True,
        env={**os.environ, "DG_TEST_KEY": "k"},
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 78  # `listend validate` says so too
    assert "vad cannot gate" in checked.stderr
