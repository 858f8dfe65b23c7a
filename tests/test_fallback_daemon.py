"""`fallback: local` end to end with the shipped defaults: ``listend run`` (no retry, timeout
or fallback setting but ``fallback: local``), the real SDK, the Deepgram-protocol test server
hearing real speech, and the embedded pocketsphinx engine. Deepgram goes away mid-stream for
longer than ``fallback_after``, the local engine takes over, Deepgram comes back: every
stretch of the audio is transcribed once, by one engine."""

from __future__ import annotations

import json
import os
import re
import time
from itertools import pairwise
from pathlib import Path

import pytest

from listend.daemon.config.models import DeepgramConfig, ListendConfig
from listend.daemon.events import TranscriptEvent
from listend.testing import running_server
from listend.testing.spoken import SpokenScript
from tests.support.cli import DaemonProcess
from tests.support.sessions import config_text
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.xdist_group("local-engine"), pytest.mark.slow]

BPS = 32000  # 16 kHz mono linear16
DRAIN_TIMEOUT = ListendConfig().drain_timeout
FALLBACK_AFTER = DeepgramConfig().fallback_after
DEADLINE = 120.0  # for any one step: the CPU is shared
UTTERANCES = (
    "turn on the kitchen lights please",  # Deepgram, before the outage
    "the library closes at six on saturday",  # the local engine (replayed)
    "what is the weather like today",
    "add eggs and milk to the shopping list",
    "remind me to call my mother tomorrow",  # somewhere here Deepgram is back
    "set a timer for ten minutes",
    "play some music in the living room",
    "good night and thank you very much",  # Deepgram, whatever the handback's timing
)
OUTAGE_AT = 4.0  # seconds of audio Deepgram gets before the drop: after the first utterance


def room() -> SpokenScript:
    """About 36 s of speech: the outage (10 s), the local engine's stint and the probe's
    backoff all fall while audio still flows."""
    script = SpokenScript(seed=15).silence(0.5)
    for text in UTTERANCES:
        script.say(text, then_silence=1.5)
    return script


def shipped_config(tmp_path: Path, dg_url: str, wav: Path, out: Path) -> Path:
    """Every retry, timeout and fallback setting at its default but ``fallback: local``."""
    config = tmp_path / "listend.yaml"
    sink = f"  out: {{type: file, path: {out}, format: jsonl}}"
    extra = "local_engine: {engine: pocketsphinx}\n"
    config.write_text(
        config_text(dg_url, wav, extra_source="    fallback: local\n", sink=sink, extra=extra)
    )
    return config


def finals(out: Path) -> list[TranscriptEvent]:
    if not out.exists():
        return []
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
    events = [TranscriptEvent.model_validate(e) for e in lines if e.get("type") == "transcript"]
    return [e for e in events if e.is_final]


def test_outage_goes_to_the_local_engine_and_back_with_nothing_left_out(tmp_path):
    script = room()
    wav = script.write_wav(tmp_path / "room.wav")
    out = tmp_path / "out.jsonl"
    with running_server(recognizer_factory=script.recognizer()) as dg:
        dg.faults.drop(after_bytes=int(OUTAGE_AT * BPS), code=1011).refuse(100_000, status=503)
        daemon = DaemonProcess(
            shipped_config(tmp_path, dg.url, wav, out),
            tmp_path / "listend.log",
            env={**os.environ, "DG_TEST_KEY": dg.api_key},
        )
        try:
            daemon.wait_log("switching to the local engine", DEADLINE)
            wait_until(
                lambda: any(e.engine == "local" and e.words for e in finals(out)),
                DEADLINE,
                "words from the local engine",
            )
            dg.faults.clear()  # Deepgram is back
            daemon.wait_log("finalizing the local stream, back to Deepgram", DEADLINE)
            daemon.wait_log(f"source hall: end of {wav}", DEADLINE)
            signalled = time.monotonic()
            code = daemon.terminate(timeout=DRAIN_TIMEOUT + 30)
            took = time.monotonic() - signalled
        finally:
            if daemon.proc.poll() is None:
                daemon.kill()
        connections = list(dg.connections)
        refusals = list(dg.refusals)
    log = daemon.log()
    assert code == 0, log
    assert took <= DRAIN_TIMEOUT
    assert "never transcribed" not in log
    assert "audio lost" not in log

    # Deepgram: dropped, refused for longer than fallback_after, probed, then streamed to.
    streamed = [c for c in connections if c.bytes_received]
    assert [c.close_code for c in streamed] == [1011, 1000]
    assert refusals
    away = re.search(r"source hall: Deepgram: reachable again after ([0-9.]+) s", log)
    assert away is not None, log
    assert float(away[1]) >= FALLBACK_AFTER
    last = [t for t in streamed[-1].control_types if t != "KeepAlive"]
    assert last == ["Finalize", "CloseStream"]

    events = finals(out)
    spoken = [e for e in events if e.words]
    engines = [e.engine for e in spoken]
    assert [pair for pair in pairwise(engines) if pair[0] != pair[1]] == [
        ("deepgram", "local"),
        ("local", "deepgram"),
    ]
    assert set(engines) == {"deepgram", "local"}

    # Nothing twice: event ids unique, word times strictly increasing, finals never overlap.
    assert len({e.id for e in events}) == len(events)
    starts = [w.start for e in events for w in e.words]
    assert all(a < b for a, b in pairwise(starts)), starts
    for earlier, later in pairwise(events):
        assert earlier.end <= later.start + 0.001, (earlier, later)

    # Nothing left out: the finals tile the audio; a gap between two holds no spoken word.
    assert events[0].start <= script.spans[0].start
    assert events[-1].end >= script.spans[-1].end
    for earlier, later in pairwise(events):  # and where the engine changes, no word is cut
        inside = [s.word for s in script.spans if s.end > earlier.end and s.start < later.start]
        gap = later.start - earlier.end
        switch = earlier.engine != later.engine
        assert not inside or (gap < 0.001 and not switch), (
            f"{inside} fell in {earlier.end:.2f}s-{later.start:.2f}s"
        )

    # Deepgram's finals hold exactly the words spoken in them, at their source times ...
    for event in (e for e in events if e.engine == "deepgram"):
        said = [s for s in script.spans if event.start <= s.start and s.end <= event.end + 0.01]
        assert [w.word for w in event.words] == [s.word for s in said], event
        for word, span in zip(event.words, said, strict=True):
            assert word.start == pytest.approx(span.start, abs=0.1), (word, span)
    # ... and every utterance, whichever engine heard it, has words in the transcript (the
    # local engine's word error rate is high: its coverage is checked, not its words).
    first = 0
    for text in script.utterances:
        count = len(text.split())
        begin, end = script.spans[first].start, script.spans[first + count - 1].end
        first += count
        heard = [w for e in events for w in e.words if w.end > begin and w.start < end]
        assert heard, f"nothing heard of {text!r} ({begin:.2f}s-{end:.2f}s)"
