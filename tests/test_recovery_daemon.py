"""Outages with the shipped defaults, end to end: ``listend run`` (no retry, speed or timeout
settings), the real SDK and listend.testing's fault plans."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from listend.daemon.config.models import ListendConfig
from listend.testing import Script, running_server
from tests.support.cli import DaemonProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

DRAIN_TIMEOUT = ListendConfig().drain_timeout  # the shipped default
RETRYING = re.compile(r"source hall: retrying within ([0-9.]+)s")


def shipped_config(tmp_path: Path, dg_url: str, wav: Path, deepgram: str = "") -> Path:
    """Every Deepgram, retry and drain setting at its default (but for ``deepgram`` lines);
    a real-time file source."""
    config = tmp_path / "listend.yaml"
    config.write_text(f"""\
device: test-box
state_dir: {tmp_path / "state"}
deepgram:
  url: {dg_url}
  api_key: $env:DG_TEST_KEY
{deepgram}sources:
  hall:
    type: file
    path: {wav}
sinks:
  out: {{type: stdout, format: jsonl}}
""")
    return config


def start(tmp_path: Path, config: Path, key: str) -> DaemonProcess:
    return DaemonProcess(config, tmp_path / "listend.log", env={**os.environ, "DG_TEST_KEY": key})


def final_words(stdout: str) -> list[dict]:
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    finals = [e for e in events if e.get("type") == "transcript" and e["is_final"]]
    return [w for e in finals for w in e["words"]]


def stop(daemon: DaemonProcess) -> tuple[int, float]:
    """SIGTERM; the exit code and the seconds the stop took."""
    signalled = time.monotonic()
    code = daemon.terminate(timeout=DRAIN_TIMEOUT + 30)
    return code, time.monotonic() - signalled


def run_past_the_audio(
    tmp_path: Path, config: Path, key: str, wav: Path
) -> tuple[DaemonProcess, int, float]:
    """Run the daemon; SIGTERM a second after its file source ended: the daemon, its exit
    code and the seconds the stop took."""
    daemon = start(tmp_path, config, key)
    try:
        daemon.wait_log(f"source hall: end of {wav}", timeout=90)
        ended = time.monotonic()
        wait_until(lambda: time.monotonic() >= ended + 1.0, 5, "a second after the audio")
        code, took = stop(daemon)
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()
    return daemon, code, took


def test_three_drops_with_refusals_every_word_once_in_source_time(tmp_path):
    # 20 s of audio: the three drops and their refusals (2.5 s + 3 x (2 s up, two refused
    # handshakes with backoffs of up to 0.5 + 1 + 2 s of full jitter) ~ 19 s at worst) all
    # happen while audio still flows, whatever the jitter draws. With 10 s an idle machine and
    # long draws let the third connection end cleanly before its drop.
    script = Script().generate(20, seed=11)
    wav = script.write_wav(tmp_path / "speech.wav")
    with running_server() as dg:
        dg.faults.drop(after_bytes=int(2.5 * 32000), code=1006).refuse(2, status=503)
        dg.faults.drop(after_seconds=2.0, code=1011).refuse(2, status=503)
        dg.faults.drop(after_seconds=2.0, code=1011).refuse(2, status=503)
        config = shipped_config(tmp_path, dg.url, wav)
        daemon, code, took = run_past_the_audio(tmp_path, config, dg.api_key, wav)
        connections = list(dg.connections)
        refusals = list(dg.refusals)
    assert code == 0, daemon.log()
    assert took <= DRAIN_TIMEOUT
    assert [c.close_code for c in connections] == [1006, 1011, 1011, 1000]
    assert [r.status for r in refusals] == [503] * 6
    last = [t for t in connections[-1].control_types if t != "KeepAlive"]
    assert last == ["Finalize", "CloseStream"]
    words = final_words(daemon.output())
    assert [w["word"] for w in words] == script.words  # every word, exactly once
    for word, span in zip(words, script.spans, strict=True):
        assert word["start"] == pytest.approx(span.start, abs=0.1), word
        assert word["end"] == pytest.approx(span.end, abs=0.1), word
    assert "never transcribed" not in daemon.log()


def test_an_outage_longer_than_the_replay_buffer_is_transcribed_from_the_spool(tmp_path):
    """The replay buffer (60 s shipped) is 2 s here, so that a 5 s outage outlasts it in a
    short run; the retry policy, catch-up, spool and drain are the shipped ones."""
    script = Script()
    for words in ("turn on the lights", "open the door", "play some music", "good night"):
        script.say(words, then_silence=0.7)  # each utterance shorter than the buffer
    script.say("lock the back door", then_silence=0.7).say("thank you very much")
    wav = script.write_wav(tmp_path / "speech.wav")
    buffer = "  replay_buffer_seconds: 2\n"
    with running_server() as dg:
        dg.faults.drop(after_bytes=int(1.5 * 32000), code=1011)
        dg.faults.refuse(1, status=503, retry_after=5.0)
        config = shipped_config(tmp_path, dg.url, wav, buffer)
        daemon, code, took = run_past_the_audio(tmp_path, config, dg.api_key, wav)
    assert code == 0, daemon.log()
    assert took <= DRAIN_TIMEOUT
    assert "from the spool first" in daemon.log()
    events = [json.loads(line) for line in daemon.output().splitlines() if line[:1] == "{"]
    finals = [e for e in events if e.get("type") == "transcript" and e["is_final"]]
    words = [w for e in finals for w in e["words"]]
    assert [w["word"] for w in words] == script.words  # every word, exactly once
    for word, span in zip(words, script.spans, strict=True):
        assert word["start"] == pytest.approx(span.start, abs=0.1), word
    assert any(e.get("recovered") for e in finals)
    assert len({e["id"] for e in events}) == len(events)
    assert "audio lost" not in daemon.log()
    assert not list((tmp_path / "state" / "spool").glob("*/*.pcm"))  # all of it committed


def test_a_server_that_drops_every_connection_at_once_is_backed_off_to_the_cap(tmp_path):
    script = Script().generate(60, seed=12)
    wav = script.write_wav(tmp_path / "speech.wav")
    cap = 30.0  # the shipped Backoff's cap
    with running_server() as dg:
        for _ in range(12):
            dg.faults.drop(after_seconds=0, code=1011)
        daemon = start(tmp_path, shipped_config(tmp_path, dg.url, wav), dg.api_key)
        try:
            daemon.wait_log(f"source hall: retrying within {cap:.1f}s", timeout=90)
            ceilings = [float(c) for c in RETRYING.findall(daemon.log())]
            attempts = len(dg.connections)
            dg.faults.clear()  # back to normal: the stop delivers what was captured
            code, took = stop(daemon)
        finally:
            if daemon.proc.poll() is None:
                daemon.kill()
        connections = list(dg.connections)
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]  # never reset by those
    assert attempts == len(ceilings)  # one connection per attempt, counted by the server
    assert all(c.bytes_received == 0 for c in connections[:attempts])
    assert all(c.close_code == 1011 for c in connections[:attempts])
    assert code == 0, daemon.log()
    assert took <= DRAIN_TIMEOUT
    assert [t for t in connections[-1].control_types if t != "KeepAlive"] == [
        "Finalize",
        "CloseStream",
    ]


def test_a_stop_during_an_outage_keeps_retrying_and_delivers(tmp_path):
    script = Script().say("said while deepgram was away").say("and still delivered")
    wav = script.write_wav(tmp_path / "speech.wav")
    with running_server() as dg:
        dg.faults.refuse(200, status=503)
        daemon = start(tmp_path, shipped_config(tmp_path, dg.url, wav), dg.api_key)
        try:
            daemon.wait_log(f"source hall: end of {wav}", timeout=60)
            wait_until(lambda: len(dg.refusals) >= 4, 60, "four refusals (backoff >= 4 s)")
            before = len(dg.refusals)
            daemon.proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            wait_until(lambda: len(dg.refusals) >= before + 3, 30, "retries while stopping")
            dg.faults.clear()  # Deepgram is back during the drain
            code = daemon.wait(timeout=DRAIN_TIMEOUT + 30)
            took = time.monotonic() - signalled
        finally:
            if daemon.proc.poll() is None:
                daemon.kill()
        connections = list(dg.connections)
    assert code == 0, daemon.log()
    assert took <= DRAIN_TIMEOUT
    assert len(connections) == 1
    assert [t for t in connections[0].control_types if t != "KeepAlive"] == [
        "Finalize",
        "CloseStream",
    ]
    assert [w["word"] for w in final_words(daemon.output())] == script.words
