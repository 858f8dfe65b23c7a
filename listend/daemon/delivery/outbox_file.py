"""The outbox's SQLite file: schema, durability settings, recovery from damage.

Every method runs on the outbox's own thread (see :mod:`listend.daemon.delivery.outbox`, which
also explains the choice of one file per sink, WAL with ``synchronous=FULL`` for inserts and
``NORMAL`` for deletes, and the exclusive lock).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from listend.daemon.errors import ListendError
from listend.daemon.events import AnyEvent, to_json

log = logging.getLogger(__name__)

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
class Dropped:
    """An event removed unsent to make room (``drop_oldest``): a gap consumers will see."""

    event_id: str
    source: str
    pos: int = 0


class OutboxFile:
    """One sink's database file and its single connection (owned by the outbox thread)."""

    def __init__(self, path: Path, *, max_events: int) -> None:
        self.path = path
        self.max_events = max_events
        self._db: sqlite3.Connection | None = None

    def open(self) -> tuple[dict[str, int], int, int]:
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

    def _connect(self) -> tuple[dict[str, int], int, int]:
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
        (last_pos,) = db.execute("SELECT coalesce(max(pos), 0) FROM outbox").fetchone()
        return counts, int(row[0]) if row else 0, int(last_pos)

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

    def insert(
        self, staged: list[tuple[int, AnyEvent]], keep_through: int, deletes: list[int]
    ) -> tuple[list[int], list[Dropped]]:
        """Insert at the staged positions (and delete delivered ones) in one transaction.
        Returns the positions not inserted (an earlier run stored that event id) and the
        events dropped for room."""
        db = self._conn()
        dropped: list[Dropped] = []
        ignored: list[int] = []
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        try:
            for pos, event in staged:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO outbox (pos, event_id, source, payload, enqueued_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (pos, event.id, event.source, to_json(event), now),
                )
                if cursor.rowcount != 1:
                    ignored.append(pos)
            # after the inserts: an event may be delivered before its own commit ran
            db.executemany("DELETE FROM outbox WHERE pos = ?", [(pos,) for pos in deletes])
            (count,) = db.execute("SELECT count(*) FROM outbox").fetchone()
            excess = count - self.max_events
            if excess > 0:
                rows = db.execute(
                    "SELECT pos, event_id, source FROM outbox WHERE pos > ? ORDER BY pos LIMIT ?",
                    (keep_through, excess),
                ).fetchall()
                db.executemany("DELETE FROM outbox WHERE pos = ?", [(r[0],) for r in rows])
                dropped = [Dropped(r[1], r[2], r[0]) for r in rows]
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('dropped', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
                    (len(dropped),),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return ignored, dropped

    def positions(self, limit: int, known: dict[int, AnyEvent]) -> list[tuple[int, str | None]]:
        """Positions, with the payload of those not in ``known`` (stored by an earlier run;
        a membership test is safe across threads)."""
        db = self._conn()
        rows: list[tuple[int, str | None]] = []
        for (pos,) in db.execute("SELECT pos FROM outbox ORDER BY pos LIMIT ?", (limit,)):
            rows.append((pos, None))
        for index, (pos, _) in enumerate(rows):
            if pos not in known:
                (payload,) = db.execute(
                    "SELECT payload FROM outbox WHERE pos = ?", (pos,)
                ).fetchone()
                rows[index] = (pos, payload)
        return rows

    def delete(self, positions: list[int]) -> None:
        db = self._conn()
        db.execute("PRAGMA synchronous=NORMAL")  # no fsync for removals (see the module doc)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("DELETE FROM outbox WHERE pos = ?", [(pos,) for pos in positions])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        finally:
            db.execute("PRAGMA synchronous=FULL")

    def close(self) -> None:
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
