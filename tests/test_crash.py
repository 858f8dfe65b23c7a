"""Nothing lost across SIGKILL, with the shipped defaults: the real daemon, the real SDK, the
Deepgram-protocol test server. Either a final is in an outbox or its audio is in the spool.

The restarted daemon reads a different (short) file: a file source starts from its beginning
again, and a microphone would not replay what it heard before the kill.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from pathlib import Path

import pytest

from listend.testing import Script, running_server
from tests.support.cli import DaemonProcess
from tests.support.mqtt import Subscriber
from tests.support.sessions import config_text
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

BPS = 32000
DEADLINE = 120.0


def config(tmp_path: Path, dg_url: str, wav: Path, sink: str, device: str = "box") -> Path:
    path = tmp_path / f"{wav.stem}.yaml"  # state_dir: tmp_path / "state", for both runs
    text = config_text(dg_url, wav, extra_source="    realtime: true\n", sink=sink, device=device)
    path.write_text(text, encoding="utf-8")
    return path


def start(path: Path, key: str, log: Path) -> DaemonProcess:
    return DaemonProcess(path, log, env={**os.environ, "DG_TEST_KEY": key})


def words_of(events: list[dict]) -> list[tuple[str, float, str]]:
    """(word, start, event id) of every final, each event once (at-least-once: dedupe on id)."""
    seen: dict[str, dict] = {}
    for event in events:
        if event.get("type") == "transcript" and event["is_final"]:
            seen.setdefault(event["id"], event)
    return sorted((w["word"], w["start"], e["id"]) for e in seen.values() for w in e["words"])


def missing_and_doubled(
    script: Script, heard: list[tuple[str, float, str]], until: float
) -> tuple[list[str], list[str]]:
    """Scripted words ending before ``until`` that were not delivered, and words delivered
    under two different ids (a duplicate consumers could not dedupe)."""
    missing, doubled = [], []
    for span in script.spans:
        ids = {i for word, at, i in heard if word == span.word and abs(at - span.start) < 0.1}
        if not ids and span.end < until:
            missing.append(f"{span.word}@{span.start:.2f}")
        if len(ids) > 1:
            doubled.append(f"{span.word}@{span.start:.2f}")
    return missing, doubled


def jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_audio_of_an_outage_survives_sigkill_and_is_delivered_once_after_restart(tmp_path):
    """Deepgram refuses every handshake for 20 s, the daemon is SIGKILLed, then restarted with
    Deepgram back: every word captured before the kill (but the last second, at most one
    spool interval) is delivered exactly once, with its original time, marked recovered."""
    script = Script().generate(30, seed=15)
    wav = script.write_wav(tmp_path / "speech.wav")
    after = Script().silence(0.5).say("zebra crossing").write_wav(tmp_path / "after.wav")
    out = tmp_path / "out.jsonl"
    sink = f"  out: {{type: file, path: {out}, format: jsonl}}"
    with running_server() as dg:
        dg.faults.refuse(100_000)
        daemon = start(config(tmp_path, dg.url, wav, sink), dg.api_key, tmp_path / "1.log")
        try:
            wait_until(lambda: dg.refusals, DEADLINE, "the first handshake refused")
            started = dg.refusals[0].at
            wait_until(
                lambda: time.monotonic() - started >= 20.0 and daemon.proc.poll() is None,
                DEADLINE,
                "20 s of outage",
            )
            killed_at = time.monotonic() - started  # source seconds captured, about
        finally:
            daemon.kill()
        assert not dg.connections
        dg.faults.clear()
        daemon = start(config(tmp_path, dg.url, after, sink), dg.api_key, tmp_path / "2.log")
        try:
            wait_until(
                lambda: "zebra" in [w for w, _, _ in words_of(jsonl(out))], DEADLINE, "live words"
            )
        finally:
            code = daemon.terminate()
    assert code == 0, daemon.log()
    events = jsonl(out)
    heard = words_of(events)
    missing, doubled = missing_and_doubled(script, heard, killed_at - 1.5)
    assert not missing, f"lost: {missing}"
    assert not doubled, f"delivered twice: {doubled}"
    recovered = [e for e in events if e.get("type") == "transcript" and e.get("recovered")]
    captured = [span for span in script.spans if span.end < killed_at - 1.5]
    assert len(captured) > 30
    assert sum(len(e["words"]) for e in recovered) >= len(captured)
    assert not list((tmp_path / "state" / "spool" / "hall").glob("*.pcm")), "spool removed"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_at_a_random_instant_loses_no_word_older_than_a_second(
    seed, mosquitto_port, tmp_path
):
    """A healthy stream into MQTT, SIGKILLed at a random instant, restarted: every word that
    ended more than a second before the kill (in audio the server had) is delivered;
    a word delivered twice carries the same event id both times."""
    rng = random.Random(seed)
    script = Script()
    while script.duration < 20:  # short utterances: Deepgram finalizes at each endpoint
        script.say(" ".join(rng.choice(["lights", "door", "music", "timer"]) for _ in range(2)))
    wav = script.write_wav(tmp_path / "speech.wav")
    after = Script().silence(0.5).say("zebra crossing").write_wav(tmp_path / "after.wav")
    device = f"d{uuid.uuid4().hex[:10]}"
    sink = f"  broker: {{type: mqtt, host: 127.0.0.1, port: {mosquitto_port}}}"
    sub = Subscriber(mosquitto_port, [f"listend/{device}/hall/transcript"])
    kill_after = rng.uniform(3.0, 15.0)
    with running_server() as dg:
        path = config(tmp_path, dg.url, wav, sink, device)
        daemon = start(path, dg.api_key, tmp_path / "1.log")
        try:
            wait_until(
                lambda: dg.connections and dg.connections[0].bytes_received >= kill_after * BPS,
                DEADLINE,
                f"{kill_after:.1f}s of audio at the server",
            )
            heard_until = dg.connections[0].bytes_received / BPS
        finally:
            daemon.kill()
        path = config(tmp_path, dg.url, after, sink, device)
        daemon = start(path, dg.api_key, tmp_path / "2.log")
        try:
            sub.wait_for(
                lambda m: any(b'"zebra"' in x.payload for x in m), DEADLINE, "the restarted run"
            )
        finally:
            code = daemon.terminate()
    sub.close()
    assert code == 0, daemon.log()
    events = [m.json() for m in sub.messages]
    missing, doubled = missing_and_doubled(script, words_of(events), heard_until - 1.0)
    assert not missing, f"lost (killed at {heard_until:.2f}s): {missing}"
    assert not doubled, f"delivered under two ids: {doubled}"
