"""Commit scheduling: batches form only while a commit is being written; acknowledgements
come batch by batch, so a steady stream of events never holds back the written ones."""

from __future__ import annotations

import asyncio
import threading

from listend.daemon.delivery.commits import Commits
from listend.daemon.delivery.outbox import Outbox
from listend.daemon.delivery.refusal import Refusal
from tests.support.events import transcript
from tests.support.waiting import async_test, wait_until_async


async def _writable() -> None:
    return None


def _commits(outbox: Outbox) -> Commits:
    refusal = Refusal("s", _writable)
    return Commits(outbox, refusal, name="s", keep_through=lambda: 0, on_dropped=print)


@async_test
async def test_events_staged_during_a_commit_go_together_in_the_next(tmp_path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_events=100)
    await outbox.open()
    commits = _commits(outbox)
    gate = threading.Event()  # holds the outbox's thread: the first commit stays in flight
    loop = asyncio.get_running_loop()
    held = loop.run_in_executor(outbox._executor, gate.wait)
    try:
        commits.add(outbox.stage([transcript("a", 0, "zero")]))
        commits.soon()
        first = commits.committed()
        await wait_until_async(lambda: commits.pending == 0, 20, "the first batch taken")
        for seq in (1, 2, 3):  # arrive while the first is on its way to the disk
            commits.add(outbox.stage([transcript("a", seq, "more")]))
            commits.soon()
        second = commits.committed()
        assert not first.done()
        assert commits.pending == 3
    finally:
        gate.set()
    await held
    await first
    assert commits.written == 1  # acknowledged with its own batch, not with the later ones
    await second
    assert commits.written == 4  # the three went in one commit: nothing pending, no third
    assert commits.pending == 0
    assert [q.event.seq for q in await outbox.peek(10)] == [0, 1, 2, 3]
    await commits.finish()
    await outbox.close()


@async_test
async def test_nothing_pending_is_acknowledged_at_once(tmp_path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_events=100)
    await outbox.open()
    commits = _commits(outbox)
    assert commits.committed().done()
    commits.add(outbox.stage([transcript("a", 0, "zero")]))
    commits.soon()
    await commits.committed()
    assert commits.written == 1
    assert commits.committed().done()
    await commits.finish()
    await outbox.close()
