"""Outbox cost per event: append (an fsynced commit), peek and remove, as the worker does them.

    .venv/bin/python bench/outbox.py [DIR] [N]

DIR should be on the storage the daemon will use (the state directory's file system): the
numbers are dominated by fsync, which differs by orders of magnitude between tmpfs, an SSD
and an SD card. Every call runs on the outbox thread; the event loop only awaits it.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from listend.daemon.delivery.outbox import Outbox
from listend.daemon.events import TranscriptEvent, event_id


def transcript(source: str, seq: int, text: str) -> TranscriptEvent:
    now = datetime.now(UTC)
    return TranscriptEvent(
        id=event_id("bench", source, 1, seq),
        device="bench",
        source=source,
        epoch=1,
        seq=seq,
        start=seq,
        end=seq + 0.8,
        started_at=now,
        ended_at=now,
        text=text,
        is_final=True,
    )


def summary(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"{name:8} n={len(ms):5}  median {statistics.median(ms):7.3f} ms  p99 {p99:7.3f} ms"


async def main(directory: Path, count: int) -> None:
    box = Outbox(directory / "bench.sqlite3", max_events=count * 2)
    await box.open()
    events = [transcript("hall", seq, "turn on the kitchen lights " * 4) for seq in range(count)]
    appends, removes = [], []
    for event in events:
        started = time.perf_counter()
        await box.commit(box.stage([event]))
        appends.append(time.perf_counter() - started)
    while len(box):
        started = time.perf_counter()
        batch = await box.peek(1)
        await box.remove(batch)
        removes.append(time.perf_counter() - started)
    await box.close()
    print(f"outbox in {directory}")
    print(summary("append", appends))
    print(summary("deliver", removes), "(peek + remove of one event)")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    if target is None:
        with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
            asyncio.run(main(Path(tmp), n))
    else:
        asyncio.run(main(target, n))
