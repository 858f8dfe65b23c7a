"""The durable outbox: one SQLite database per sink, so no transcript is lost to an outage.

Layout: ``<state_dir>/outbox/<sink>.sqlite3``, one database per sink rather than one shared
database with a sink column, because

- each sink worker is the only writer of its file, so a slow sink's deletes never wait on
  another sink's write lock, and each file needs exactly one connection and one thread;
- a sink removed from the config leaves a file that can be inspected or deleted on its own,
  and damage to one file (see :meth:`Outbox.open`) costs one sink's backlog, not all of them;
- the size bound (``max_events``) is a plain row count of that file.

The price is one fsync per sink per event instead of one per event; finals arrive at human
speech rate (about one per second per source), so that is a few fsyncs a second at most.

Durability: WAL journal with ``synchronous=FULL``. In WAL mode every commit is atomic and a
crash (SIGKILL) never corrupts the file or loses a commit; ``NORMAL`` would keep that but
may roll back the last commits on *power loss*, and :meth:`Outbox.append` returning is the
promise to the stream session that the event is safe, so every commit is fsynced. (Storage
that acknowledges a flush before the data is on the medium, like some SD cards, can still
lose the last commits; nothing above the block layer can fix that.) The database is opened
with ``locking_mode=EXCLUSIVE``: a second daemon on the same state directory fails clearly
instead of delivering the same backlog twice.

Every SQLite call runs on the outbox's own single thread, never on the event loop: with
``synchronous=FULL`` a commit waits for an fsync, which takes milliseconds on an SD card.
Interim results are never stored here (see :mod:`listend.daemon.delivery`).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from listend.daemon.errors import ListendError
from listend.daemon.events import AnyEvent, from_json, to_json

log = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    pos INTEGER PRIMARY KEY,          -- delivery order (FIFO)
    event_id TEXT NOT NULL UNIQUE,    -- the same event is never queued twice
    source TEXT NOT NULL,
    payload TEXT NOT NULL,            -- the event's JSON (events.to_json)
    enqueued_at REAL NOT NULL         -- Unix time, for operators inspecting a backlog
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class OutboxError(ListendError):
    """The outbox cannot be opened or written (permissions, disk, another daemon)."""


@dataclass(frozen=True, slots=True)
class Queued:
    """One stored event and its position in the outbox."""

    pos: int
    event: AnyEvent


@dataclass(frozen=True, slots=True)
class Dropped:
    """An event removed unsent to make room (``drop_oldest``): a gap consumers will see."""

    event_id: str
    source: str


class Outbox:
    """A FIFO of events for one sink, stored in SQLite; async methods run on its own thread."""

    def __init__(self, path: Path, *, max_events: int) -> None:
        self.path = path
        self.max_events = max_events
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._count = 0
        self._by_source: Counter[str] = Counter()
        #: Events dropped to make room, over the life of this file.
        self.dropped_total = 0

    # -- state kept in memory (loop thread only) --------------------------------------------

    def __len__(self) -> int:
        return self._count

    def pending(self, source: str) -> int:
        """How many stored events of ``source`` are not yet delivered."""
        return self._by_source[source]

    @property
    def is_open(self) -> bool:
        return self._executor is not None

    # -- async API ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Open (or create) the file; a damaged file is moved aside and a new one started."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"outbox-{self.path.stem}")
        try:
            counts, dropped = await self._call(self._open_sync)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._by_source = Counter(counts)
        self._count = sum(counts.values())
        self.dropped_total = dropped
        if self._count:
            log.info(
                "outbox %s: %d undelivered event(s) from a previous run", self.path, self._count
            )

    async def append(self, event: AnyEvent, *, keep_through: int = 0) -> list[Dropped]:
        """Store ``event`` durably; when full, drop the oldest events after ``keep_through``.

        Returns the dropped events (empty unless the outbox was full). ``keep_through`` is the
        last position of the batch being delivered right now, which must not be dropped.
        """
        added, dropped = await self._call(self._append_sync, event, keep_through)
        if added:
            self._count += 1
            self._by_source[event.source] += 1
        for item in dropped:
            self._forget(item.source)
        self.dropped_total += len(dropped)
        return dropped

    async def peek(self, limit: int) -> list[Queued]:
        """The oldest ``limit`` events, in order, without removing them."""
        return await self._call(self._peek_sync, limit)

    async def remove(self, items: Sequence[Queued]) -> None:
        """Forget delivered events (the sink confirmed them)."""
        removed = await self._call(self._remove_sync, [item.pos for item in items])
        for item in items:
            if item.pos in removed:
                self._forget(item.event.source)

    async def close(self) -> None:
        if self._executor is None:
            return
        try:
            await self._call(self._close_sync)
        finally:
            self._executor.shutdown(wait=False)
            self._executor = None

    def _forget(self, source: str) -> None:
        self._count -= 1
        self._by_source[source] -= 1
        if self._by_source[source] <= 0:
            del self._by_source[source]

    async def _call(self, func: Callable[..., T], *args: object) -> T:
        if self._executor is None:
            raise OutboxError(f"outbox {self.path} is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, func, *args)

    # -- the outbox thread ------------------------------------------------------------------

    def _open_sync(self) -> tuple[dict[str, int], int]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = (
                f"cannot create {self.path.parent}: {exc.strerror} "
                "(set state_dir in the config or $STATE_DIRECTORY)"
            )
            raise OutboxError(msg) from None
        try:
            return self._connect()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                msg = f"outbox {self.path} is in use by another listend process"
                raise OutboxError(msg) from None
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:  # not a database, malformed image
            self._close_quietly()
            self._quarantine(str(exc))
            return self._connect()

    def _connect(self) -> tuple[dict[str, int], int]:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=1.0)
        self._db = db
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            log.warning("outbox %s: journal_mode is %s, not wal", self.path, mode)
        db.execute("PRAGMA synchronous=FULL")
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")
        db.executescript(_SCHEMA)
        counts = dict(db.execute("SELECT source, count(*) FROM outbox GROUP BY source").fetchall())
        row = db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()
        return counts, int(row[0]) if row else 0

    def _quarantine(self, reason: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            old = Path(f"{self.path}{suffix}")
            if old.exists():
                old.rename(f"{self.path}.damaged-{stamp}{suffix}")
        log.error(
            "outbox %s was damaged (%s): moved aside as %s.damaged-%s; starting a new one",
            self.path,
            reason,
            self.path,
            stamp,
        )

    def _append_sync(self, event: AnyEvent, keep_through: int) -> tuple[bool, list[Dropped]]:
        db = self._conn()
        dropped: list[Dropped] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            cursor = db.execute(
                "INSERT OR IGNORE INTO outbox (event_id, source, payload, enqueued_at) "
                "VALUES (?, ?, ?, ?)",
                (event.id, event.source, to_json(event), time.time()),
            )
            added = cursor.rowcount == 1
            (count,) = db.execute("SELECT count(*) FROM outbox").fetchone()
            excess = count - self.max_events
            if excess > 0:
                rows = db.execute(
                    "SELECT pos, event_id, source FROM outbox WHERE pos > ? ORDER BY pos LIMIT ?",
                    (keep_through, excess),
                ).fetchall()
                db.executemany("DELETE FROM outbox WHERE pos = ?", [(r[0],) for r in rows])
                dropped = [Dropped(r[1], r[2]) for r in rows]
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('dropped', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
                    (len(dropped),),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return added, dropped

    def _peek_sync(self, limit: int) -> list[Queued]:
        rows = (
            self._conn()
            .execute("SELECT pos, payload FROM outbox ORDER BY pos LIMIT ?", (limit,))
            .fetchall()
        )
        return [Queued(pos, from_json(payload)) for pos, payload in rows]

    def _remove_sync(self, positions: list[int]) -> set[int]:
        db = self._conn()
        removed: set[int] = set()
        db.execute("BEGIN IMMEDIATE")
        try:
            for pos in positions:
                if db.execute("DELETE FROM outbox WHERE pos = ?", (pos,)).rowcount:
                    removed.add(pos)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return removed

    def _close_sync(self) -> None:
        if self._db is not None:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._close_quietly()

    def _close_quietly(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            finally:
                self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise OutboxError(f"outbox {self.path} is not open")
        return self._db
