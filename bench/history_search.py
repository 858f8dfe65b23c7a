"""`listend search` time at a million stored finals (goal: under 100 ms).

    .venv/bin/python bench/history_search.py [FINALS]

Fills a history database (the `history` sink's store, in a temporary directory) with FINALS
(default 1 000 000) finals of generated prose — 7 to 14 words each, like one spoken
utterance, over 16 sources and about a year of time — then times typical searches: a rare
word, a common one, two words, a prefix, with a source and a time bound, each repeated and
reported as the median and the worst of the repeats, read-only through a fresh connection
as `listend search` opens it.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from listend.daemon.events import TranscriptEvent, event_id
from listend.plugins.history_store import HistoryStore
from listend.testing.scripted import WORDS

START = datetime(2026, 1, 1, tzinfo=UTC)
RARE = "zebra"  # one final in ~10 000 has it
REPEATS = 20


def finals(count: int, seed: int = 1):
    rng = random.Random(seed)
    seconds_apart = 365 * 86400 / count
    for seq in range(1, count + 1):
        words = rng.choices(WORDS, k=rng.randint(7, 14))
        if rng.random() < 1e-4:
            words[rng.randrange(len(words))] = RARE
        source = f"room{seq % 16}"
        at = START + timedelta(seconds=seq * seconds_apart)
        yield TranscriptEvent(
            id=event_id("bench", source, 1, seq),
            device="bench",
            source=source,
            epoch=1,
            seq=seq,
            start=float(seq),
            end=seq + 2.0,
            started_at=at,
            ended_at=at + timedelta(seconds=2),
            text=" ".join(words),
            confidence=0.9,
            is_final=True,
            speech_final=True,
        )


def fill(path: Path, count: int) -> float:
    store = HistoryStore(path)
    began = time.perf_counter()
    batch = []
    for event in finals(count):
        batch.append(event)
        if len(batch) == 5000:
            store.add(batch)
            batch = []
    store.add(batch)
    took = time.perf_counter() - began
    store.close()
    return took


def timed(path: Path, query: str, **bounds) -> dict[str, float]:
    times, found = [], 0
    for _ in range(REPEATS):
        began = time.perf_counter()
        store = HistoryStore(path, readonly=True)
        found = len(store.search(query, **bounds))
        store.close()
        times.append((time.perf_counter() - began) * 1000)
    return {
        "median_ms": round(statistics.median(times), 2),
        "max_ms": round(max(times), 2),
        "hits": found,
    }


def main(count: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.sqlite3"
        fill_seconds = fill(path, count)
        month = (START + timedelta(days=300)).timestamp()
        searches = {
            f"rare word ({RARE})": timed(path, RARE),
            "common word (lights)": timed(path, "lights"),
            "two words (kitchen lights)": timed(path, "kitchen lights"),
            "prefix (kitch*)": timed(path, "kitch*"),
            "word, one source (music, room3)": timed(path, "music", sources=["room3"]),
            "word, since a date (timer)": timed(path, "timer", since=month),
            "word, until a date (timer, the first month)": timed(
                path, "timer", until=(START + timedelta(days=30)).timestamp()
            ),
            "rare word, one source, since (zebra)": timed(
                path, RARE, sources=["room5"], since=month
            ),
        }
        return {
            "finals": count,
            "database_mb": round(path.stat().st_size / 1e6, 1),
            "fill_seconds": round(fill_seconds, 1),
            "searches": searches,
        }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000), indent=2))
