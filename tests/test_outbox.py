"""The SQLite outbox: order, durability across reopen and SIGKILL, bounds, damage."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from listend.daemon.delivery.outbox import REMOVE_DELAY, Outbox, OutboxError
from tests.support.events import transcript, utterance_end
from tests.support.outbox import store
from tests.support.paths import ROOT
from tests.support.waiting import async_test, wait_until_async


@async_test
async def test_fifo_order_and_remove(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3", max_events=100)
    await box.open()
    for seq in range(5):
        await store(box, transcript("a", seq, f"t{seq}"))
    await store(box, utterance_end("b", 0))
    assert len(box) == 6
    assert box.pending("a") == 5
    assert box.pending("b") == 1
    head = await box.peek(3)
    assert [q.event.seq for q in head] == [0, 1, 2]
    await box.remove(head)
    assert [q.event.id for q in await box.peek(10)] == [
        *(transcript("a", s, "").id for s in (3, 4)),
        utterance_end("b", 0).id,
    ]
    assert box.pending("a") == 2
    await box.close()


@async_test
async def test_same_event_is_stored_once(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3", max_events=10)
    await box.open()
    event = transcript("a", 1, "x")
    await store(box, event)
    await store(box, event)
    assert len(box) == 1
    assert len(await box.peek(10)) == 1
    await box.close()


@async_test
async def test_survives_reopen_with_counts(tmp_path):
    path = tmp_path / "o.sqlite3"
    box = Outbox(path, max_events=10)
    await box.open()
    for seq in range(3):
        await store(box, transcript("a", seq, "x"))
    await box.close()
    again = Outbox(path, max_events=10)
    await again.open()
    assert len(again) == 3
    assert again.pending("a") == 3
    assert [q.event.seq for q in await again.peek(10)] == [0, 1, 2]
    await again.close()


@async_test
async def test_drop_oldest_keeps_the_batch_in_flight(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3", max_events=3)
    await box.open()
    for seq in range(3):
        await store(box, transcript("a", seq, "x"))
    inflight = await box.peek(1)
    dropped = await store(box, transcript("a", 3, "x"), keep_through=inflight[-1].pos)
    assert [d.event_id for d in dropped] == [transcript("a", 1, "").id]
    assert [q.event.seq for q in await box.peek(10)] == [0, 2, 3]
    assert box.dropped_total == 1
    await box.close()
    again = Outbox(tmp_path / "o.sqlite3", max_events=3)
    await again.open()
    assert again.dropped_total == 1  # the gap is remembered across restarts
    await again.close()


@async_test
async def test_second_process_is_refused(tmp_path):
    path = tmp_path / "o.sqlite3"
    box = Outbox(path, max_events=10)
    await box.open()
    await store(box, transcript("a", 0, "x"))
    other = Outbox(path, max_events=10)
    with pytest.raises(OutboxError, match="in use by another listend process"):
        await other.open()
    await box.close()


@async_test
async def test_unwritable_state_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    box = Outbox(blocker / "outbox" / "o.sqlite3", max_events=10)
    with pytest.raises(OutboxError, match=r"cannot create .*STATE_DIRECTORY"):
        await box.open()


@async_test
async def test_damaged_file_is_moved_aside(tmp_path, caplog):
    path = tmp_path / "o.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    box = Outbox(path, max_events=10)
    await box.open()
    await store(box, transcript("a", 0, "x"))
    assert len(box) == 1
    await box.close()
    assert list(tmp_path.glob("o.sqlite3.damaged-*"))
    assert "was damaged" in caplog.text


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from listend.daemon.delivery.outbox import Outbox
    from tests.support.events import transcript

    async def main():
        box = Outbox(Path(sys.argv[1]), max_events=1_000_000)
        await box.open()
        seq = 0
        while True:
            await box.commit(box.stage([transcript("a", seq, "x" * 200)]))
            print(seq, flush=True)  # acknowledged: the commit returned
            seq += 1

    asyncio.run(main())
    """
)


def test_sigkill_mid_write_loses_no_acknowledged_event(tmp_path):
    """A writer killed at an arbitrary moment: every event it was told is safe is there, and
    the file passes SQLite's integrity check."""
    path = tmp_path / "o.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    acked = -1
    try:
        for line in proc.stdout:
            acked = int(line)
            if acked >= 150:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
    assert acked >= 150
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()

    async def check():
        box = Outbox(path, max_events=1_000_000)
        await box.open()
        seqs = [q.event.seq for q in await box.peek(1_000_000)]
        await box.close()
        return seqs

    seqs = asyncio.run(check())
    assert seqs[: acked + 1] == list(range(acked + 1))


@async_test
async def test_staged_events_are_deliverable_before_their_commit(tmp_path):
    """Delivery may start while the fsync is under way; removal waits for the commit (the
    single outbox thread runs the delete after the insert), so nothing is removed early."""
    box = Outbox(tmp_path / "o.sqlite3", max_events=10)
    await box.open()
    staged = box.stage([transcript("a", 0, "x"), transcript("a", 1, "y")])
    head = await box.peek(10)  # before the commit ran
    assert [q.event.seq for q in head] == [0, 1]
    commit = asyncio.create_task(box.commit(staged))
    await box.remove(head[:1])  # confirmed by the sink before the commit finished
    await commit
    await box.close()
    again = Outbox(tmp_path / "o.sqlite3", max_events=10)
    await again.open()
    assert [q.event.seq for q in await again.peek(10)] == [1]
    await again.close()


@async_test
async def test_removals_reach_the_file_without_another_append(tmp_path):
    path = tmp_path / "o.sqlite3"
    box = Outbox(path, max_events=10)
    await box.open()
    await store(box, *[transcript("a", seq, "x") for seq in range(3)])
    await box.remove(await box.peek(2))
    assert len(box) == 1
    # the deferred delete runs by itself, REMOVE_DELAY later
    await wait_until_async(
        lambda: box._flush is None and not box._tasks, 10 + REMOVE_DELAY, "the deferred delete"
    )
    await box._call(box._file.close)  # close the file without the final flush
    box._executor.shutdown(wait=True)
    box._executor = None
    again = Outbox(path, max_events=10)
    await again.open()
    assert [q.event.seq for q in await again.peek(10)] == [2]
    await again.close()


@async_test
async def test_an_earlier_runs_backlog_goes_first(tmp_path):
    path = tmp_path / "o.sqlite3"
    box = Outbox(path, max_events=10)
    await box.open()
    await store(box, *[transcript("a", seq, "old") for seq in range(2)])
    await box.close()
    again = Outbox(path, max_events=10)
    await again.open()
    await store(again, transcript("a", 2, "new"))
    await store(again, transcript("a", 0, "old"))  # already stored by the earlier run
    first = await again.peek(1)
    assert [q.event.seq for q in first] == [0]
    await again.remove(first)
    rest = await again.peek(10)
    assert [q.event.seq for q in rest] == [1, 2]
    assert len(again) == 2
    await again.remove(rest)
    assert len(again) == 0
    assert await again.peek(10) == []
    await again.close()
