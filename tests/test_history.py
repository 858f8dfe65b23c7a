"""The history sink: finals and phrase events in SQLite/FTS5, retention by age and by size,
`listend search` (text, jsonl, srt) against a running daemon."""

from __future__ import annotations

import json
import os
import urllib.request
from datetime import timedelta

import pytest

from listend.daemon.events import PhraseEvent, event_id
from listend.plugins.history_store import HistoryStore, match_expression, parse_duration, parse_when
from listend.testing import Script, running_server
from tests.support.cli import DaemonProcess, run_listend
from tests.support.events import T0, transcript
from tests.support.net import free_port
from tests.support.sessions import config_text
from tests.support.waiting import wait_until

DEADLINE = 60.0


def phrase(seq: int, text: str, *, source: str = "hall") -> PhraseEvent:
    at = T0 + timedelta(seconds=seq)
    return PhraseEvent(
        id=event_id("dev", source, 1, seq),
        device="dev",
        source=source,
        epoch=1,
        seq=seq,
        trigger="help",
        status="confirmed",
        text=text,
        start=float(seq),
        end=seq + 0.5,
        started_at=at,
        at=at,
    )


@pytest.fixture
def store(tmp_path):
    db = HistoryStore(tmp_path / "history.sqlite3")
    yield db
    db.close()


def texts(hits) -> list[str]:
    return [hit.event["text"] for hit in hits]


def test_finals_and_phrases_are_found_by_their_words(store):
    store.add(
        [
            transcript("hall", 1, "turn on the kitchen lights"),
            transcript("hall", 2, "kitchen timer for ten minutes", is_final=False),  # interim
            transcript("porch", 3, "is the kitchen door locked"),
            transcript("hall", 4, "good night"),
            phrase(5, "help me"),
        ]
    )
    assert texts(store.search("kitchen")) == [
        "turn on the kitchen lights",
        "is the kitchen door locked",
    ]
    assert texts(store.search("KITCHEN lights")) == ["turn on the kitchen lights"]
    assert texts(store.search("kitch*", sources=["porch"])) == ["is the kitchen door locked"]
    assert texts(store.search("help")) == ["help me"]
    assert store.search("help")[0].event["type"] == "phrase"
    assert store.search("nothing") == []
    hit = store.search("lights", marks=("<", ">"))[0]
    assert hit.snippet == "turn on the kitchen <lights>"


def test_time_bounds_and_limit(store):
    store.add([transcript("hall", i, f"note number {i}") for i in range(1, 11)])
    start = (T0 + timedelta(seconds=4)).timestamp()
    end = (T0 + timedelta(seconds=7)).timestamp()
    hits = store.search("note", since=start, until=end)
    assert texts(hits) == ["note number 4", "note number 5", "note number 6"]
    assert texts(store.search("note", limit=2)) == ["note number 9", "note number 10"]


def test_a_redelivered_event_is_stored_once(store):
    final = transcript("hall", 1, "hello there")
    assert store.add([final]) == 1
    assert store.add([final]) == 0
    assert store.count() == 1


def test_entries_are_kept_in_time_order_even_in_the_same_microsecond(store):
    late = transcript("hall", 9, "recovered words from before", start=0.5)  # arrives last
    same = [transcript(src, 1, f"{src} at the same instant", start=1.0) for src in ("a", "b")]
    store.add([transcript("hall", 5, "words later on", start=5.0), *same])
    store.add([late])
    assert texts(store.search("words")) == ["recovered words from before", "words later on"]
    assert len(store.search("instant")) == 2
    since = (T0 + timedelta(seconds=0.9)).timestamp()
    assert texts(store.search("words", since=since)) == ["words later on"]


def test_retention_by_age_deletes_what_is_older(store):
    store.add([transcript("hall", i, f"entry {i}") for i in range(1, 6)])
    now = (T0 + timedelta(seconds=3.5)).timestamp()
    deleted = store.prune(max_age=1.0, max_bytes=None, now=now)
    assert deleted == 2  # started at T0+1s and T0+2s
    assert texts(store.search("entry")) == ["entry 3", "entry 4", "entry 5"]


def test_retention_by_size_deletes_the_oldest_and_gives_the_space_back(tmp_path, store):
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    words += ["india", "juliet", "kilo", "lima"]
    for batch in range(40):
        store.add(
            transcript("hall", n, f"{n} " + " ".join(words[(n + k) % 12] for k in range(30)))
            for n in range(batch * 100 + 1, batch * 100 + 101)
        )
    limit = 256 * 1024
    assert store.size_bytes() > limit
    deleted = store.prune(max_age=None, max_bytes=limit)
    assert deleted > 0
    assert store.size_bytes() <= limit
    assert (tmp_path / "history.sqlite3").stat().st_size <= limit  # handed back to the disk
    assert (tmp_path / "history.sqlite3-wal").stat().st_size == 0
    newest = store.search("alpha", limit=1)[0].event
    assert newest["seq"] == 4000 or newest["seq"] > 3900
    assert store.count() == 4000 - deleted
    oldest_left = min(hit.event["seq"] for hit in store.search("alpha", limit=10000))
    assert oldest_left > deleted - 100  # what went was the oldest


def test_durations_and_queries():
    assert parse_duration("90s") == 90
    assert parse_duration("2h") == 7200
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration(15) == 15
    assert parse_when("2h", now=10_000) == 10_000 - 7200
    assert parse_when("2026-12-01T08:00:00+00:00") == 1_796_112_000
    with pytest.raises(ValueError, match="duration"):
        parse_duration("soon")
    assert match_expression('front "desk" door*') == '"front" "desk" "door"*'
    with pytest.raises(ValueError, match="no words"):
        match_expression("?!")


def test_search_a_running_daemons_history(tmp_path):
    script = Script().say("please help me").silence(0.3).say("turn on the kitchen lights")
    wav = script.silence(0.5).write_wav(tmp_path / "speech.wav")
    port = free_port()
    sink = (
        "  history: {type: history, max_age: 7d, max_mb: 64}\n"
        f"  page: {{type: captions, listen: '127.0.0.1:{port}'}}"
    )
    with running_server() as dg:
        text = config_text(dg.url, wav, extra_source="    loop: true\n", sink=sink)
        text = text.replace(
            "options: {model: nova-3}", "options: {model: nova-3, interim_results: true}"
        )
        text += "triggers:\n  help: {phrases: [help me]}\n"
        config = tmp_path / "listend.yaml"
        config.write_text(text, encoding="utf-8")
        daemon = DaemonProcess(
            config, tmp_path / "d.log", env={**os.environ, "DG_TEST_KEY": dg.api_key}
        )
        try:

            def found() -> bool:
                result = run_listend("search", "kitchen", "-c", str(config), "--format", "jsonl")
                return result.returncode == 0

            wait_until(found, DEADLINE, "a stored final found while the daemon runs")
            result = run_listend("search", "kitchen", "-c", str(config), "--format", "jsonl")
            events = [json.loads(line) for line in result.stdout.splitlines()]
            assert events[0]["text"] == "turn on the kitchen lights"
            assert events[0]["source"] == "hall"
            wait_until(
                lambda: run_listend("search", "help", "-c", str(config)).returncode == 0,
                DEADLINE,
                "a phrase event stored",
            )
            listing = run_listend("search", "help", "-c", str(config), "--source", "hall")
            assert "hall" in listing.stdout
            assert "phrase help confirmed: help me" in listing.stdout
            srt = run_listend("search", "lights", "-c", str(config), "--format", "srt")
            assert srt.stdout.startswith("1\n00:00:")
            assert "turn on the kitchen lights" in srt.stdout
            later = run_listend("search", "kitchen", "-c", str(config), "--since", "2030-01-01")
            assert later.returncode == 1
            assert later.stdout == ""
            url = f"http://127.0.0.1:{port}/search?q=kitchen+lights&source=hall&since=1h"
            with urllib.request.urlopen(url, timeout=10) as response:  # the captions server
                results = json.load(response)["results"]
            assert results[-1]["event"]["text"] == "turn on the kitchen lights"
            assert results[-1]["snippet"] == "turn on the <mark>kitchen</mark> <mark>lights</mark>"
        finally:
            code = daemon.terminate()
    assert code == 0, daemon.log()


def test_search_without_a_history_sink_says_so(tmp_path):
    config = tmp_path / "listend.yaml"
    config.write_text(f"state_dir: {tmp_path}\nsinks:\n  out: {{type: stdout}}\n", encoding="utf-8")
    result = run_listend("search", "x", "-c", str(config))
    assert result.returncode == 1
    assert "no history sink" in result.stderr
