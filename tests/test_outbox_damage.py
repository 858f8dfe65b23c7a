"""Damaged outbox files, written for real (sqlite3 and byte edits): the daemon's sink worker
starts, reports what it found, salvages what reads and delivers it; never a crash."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from listend.daemon.delivery.dead_letter import dead_letter_path
from listend.daemon.delivery.outbox import Outbox
from listend.daemon.delivery.worker import SinkWorker, outbox_path
from listend.daemon.events import AnyEvent
from listend.daemon.plugin.source import PluginContext
from listend.daemon.retry.backoff import Backoff
from listend.plugins.file_sink import FileSink, FileSinkConfig
from tests.support.events import transcript
from tests.support.outbox import outbox_ids, store
from tests.support.waiting import async_test, wait_until_async

EVENTS = 60  # enough rows for several table and index pages
PAGE = 4096


async def build(path: Path, *, in_wal: bool) -> list[AnyEvent]:
    """An outbox holding EVENTS events as a daemon leaves it: closed cleanly (all in the
    database file), or killed (``in_wal``: its commits still in the WAL)."""
    events = [transcript("a", seq, f"event {seq} " + "x" * 300) for seq in range(EVENTS)]
    work = path.parent / "build" / path.name
    work.parent.mkdir(parents=True)
    box = Outbox(work, max_events=10**6)
    await box.open()
    for event in events:
        await store(box, event)
    if in_wal:  # the files as they are between commits: what SIGKILL leaves
        for suffix in ("", "-wal"):
            shutil.copyfile(f"{work}{suffix}", f"{path}{suffix}")
    await box.close()
    if not in_wal:
        shutil.copyfile(work, path)
    shutil.rmtree(work.parent)
    return events


def poke(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(data)


def rootpage(path: Path, name: str) -> int:
    db = sqlite3.connect(path)
    try:
        (page,) = db.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)
        ).fetchone()
        return int(page)
    finally:
        db.close()


def sql(path: Path, statement: str) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute(statement)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


def wal(path: Path) -> Path:
    return Path(f"{path}-wal")


def index_byte(path: Path) -> None:
    """One byte in the event-id index (quick_check still passes)."""
    page = rootpage(path, "sqlite_autoindex_outbox_1")
    poke(path, (page - 1) * PAGE + PAGE - 20, b"\x00")


def table_leaf(path: Path) -> None:
    poke(path, 5 * PAGE + 200, b"\xff" * 600)


def truncate(path: Path, size: int) -> None:
    with path.open("r+b") as handle:
        handle.truncate(size)


def first_row(statement: str) -> Callable[[Path], None]:
    return lambda path: sql(path, f"{statement} WHERE pos = (SELECT min(pos) FROM outbox)")


@dataclass(frozen=True)
class Case:
    name: str
    damage: Callable[[Path], None]
    in_wal: bool = False
    moved: bool = True  # the file is moved aside as .damaged-<time>
    kept: tuple[int, int] = (0, EVENTS)  # how many of the stored events are delivered
    dead: tuple[int, int] = (0, 0)  # how many rows are dead-lettered
    says: str = "was damaged"  # in the log


def unreadable_row(name: str, update: str) -> Case:
    """One stored row made into something that is no event: dead-lettered, the rest sent."""
    return Case(
        name,
        first_row(update),
        moved=False,
        kept=(EVENTS - 1, EVENTS - 1),
        dead=(1, 1),
        says="could not be read as events",
    )


CASES = [
    Case("garbage file", lambda p: p.write_bytes(b"this is not sqlite" * 300), kept=(0, 0)),
    Case("0-byte file", lambda p: truncate(p, 0), kept=(0, 0), says="empty (0 bytes)"),
    Case("header overwritten", lambda p: poke(p, 0, b"\x00" * 100), kept=(0, 0)),
    Case(
        "truncated file",
        lambda p: truncate(p, p.stat().st_size // 2),
        kept=(1, EVENTS - 1),
        dead=(0, 5),  # rows cut in half
    ),
    Case("byte in the event-id index", index_byte, kept=(EVENTS, EVENTS)),
    Case("garbage in a table page", table_leaf, kept=(1, EVENTS - 1)),
    unreadable_row("invalid JSON row", "UPDATE outbox SET payload = '{not json'"),
    unreadable_row(
        "unknown event version", "UPDATE outbox SET payload = json_set(payload, '$.v', 2)"
    ),
    unreadable_row(
        "unknown event type", "UPDATE outbox SET payload = json_set(payload, '$.type', 'bogus')"
    ),
    unreadable_row("invalid UTF-8 payload", "UPDATE outbox SET payload = CAST(x'7bff22' AS TEXT)"),
    Case(
        "truncated WAL",
        lambda p: truncate(wal(p), wal(p).stat().st_size - 1000),
        in_wal=True,
        moved=False,
        kept=(1, EVENTS - 1),
        says="ends in a partial frame",
    ),
    Case(
        "garbage WAL",
        lambda p: wal(p).write_bytes(b"\x5a" * wal(p).stat().st_size),
        in_wal=True,
        kept=(0, 0),
        says="header is garbage",
    ),
    Case(
        "WAL frame overwritten",
        lambda p: poke(wal(p), wal(p).stat().st_size // 2, b"\xa5" * 64),
        in_wal=True,
        kept=(1, EVENTS - 1),
        says="WAL is damaged at frame",
    ),
    Case("WAL without its database", Path.unlink, in_wal=True, says="without its database"),
    Case(
        "0-byte database with its WAL",
        lambda p: truncate(p, 0),
        in_wal=True,
        says="empty (0 bytes) but its WAL",
    ),
]


def delivered_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@async_test
async def test_a_damaged_outbox_is_reported_salvaged_and_delivered(tmp_path, caplog, case):
    caplog.set_level(logging.INFO)
    state = tmp_path / "state"
    path = outbox_path(state, "disk")
    path.parent.mkdir(parents=True)
    events = await build(path, in_wal=case.in_wal)
    case.damage(path)

    out = tmp_path / "out.jsonl"
    config = FileSinkConfig.model_validate({"type": "file", "path": str(out)})
    worker = SinkWorker(FileSink("disk", config, PluginContext("dev", state)), Backoff(cap=0.05))
    task = asyncio.create_task(worker.run())
    after = transcript("b", 0, "stored after the damage")
    await worker.put(after)
    await wait_until_async(lambda: after.id in delivered_ids(out) and worker.depth() == 0)
    worker.close()
    await task

    delivered = delivered_ids(out)
    kept = [e.id for e in events if e.id in delivered]
    assert case.kept[0] <= len(kept) <= case.kept[1]
    assert case.dead[0] <= worker.dead_lettered <= case.dead[1]
    assert bool(list(path.parent.glob(f"{path.name}.damaged-*"))) == case.moved
    assert case.says in caplog.text
    if len(kept) < EVENTS:  # a loss is never silent
        assert any(r.levelno >= logging.WARNING for r in caplog.records)
    if worker.dead_lettered:
        lines = dead_letter_path(state, "disk").read_text().splitlines()
        record = json.loads(lines[0])
        assert record["error"].startswith("unreadable outbox row")
        assert "payload" in record
    assert await outbox_ids(state, "disk") == []  # and the next start is clean


@async_test
async def test_recover_keeps_this_runs_events_and_the_order(tmp_path):
    """Recovery (here with integrity_check passing: the file is reopened) stores this run's
    committed events again from memory and keeps every count and the FIFO order."""
    path = tmp_path / "o.sqlite3"
    earlier = [transcript("a", seq, "earlier") for seq in range(3)]
    box = Outbox(path, max_events=100)
    await box.open()
    for event in earlier:
        await store(box, event)
    await box.close()

    box = Outbox(path, max_events=100)
    await box.open()
    now = [transcript("b", seq, "this run") for seq in range(2)]
    for event in now:
        await store(box, event)
    head = await box.peek(1)
    await box.remove(head)  # an earlier event delivered, its deletion not written yet
    await box.recover("simulated query failure")
    assert len(box) == 4
    assert (box.pending("a"), box.pending("b")) == (2, 2)
    assert [q.event.id for q in await box.peek(10)] == [e.id for e in [*earlier[1:], *now]]
    await box.close()
    assert stored_ids(path) == [e.id for e in [*earlier[1:], *now]]


def stored_ids(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [row[0] for row in db.execute("SELECT event_id FROM outbox ORDER BY pos")]
    finally:
        db.close()
