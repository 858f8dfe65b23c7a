"""The outbox's SQLite file: schema, durability settings, recovery from damage.

Every method runs on the outbox's own thread (see :mod:`listend.daemon.delivery.outbox`, which
also explains the choice of one file per sink, WAL with ``synchronous=FULL`` for inserts and
``NORMAL`` for deletes, and the exclusive lock).

SQLite errors leave here as one of two kinds the outbox can act on: :class:`OutboxFullError` (the
disk is full or refuses writes: stop storing, probe until it takes writes again) and
:class:`OutboxDamagedError` (a query found the file malformed: :meth:`OutboxFile.recover`). A file
found damaged is moved aside as ``<name>.damaged-<time>`` and what still reads of it is
salvaged into a new one (:mod:`listend.daemon.delivery.outbox_repair`).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

from listend.daemon.delivery.outbox_repair import inspect, salvage
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


P = ParamSpec("P")
T = TypeVar("T")

_INSERT = (
    "INSERT OR IGNORE INTO outbox (pos, event_id, source, payload, enqueued_at) "
    "VALUES (?, ?, ?, ?, ?)"
)


class OutboxError(ListendError):
    """The outbox cannot be opened or written (permissions, disk, another daemon)."""


class OutboxFullError(OutboxError):
    """The file cannot grow: the disk is full (or fails writes). Nothing was stored."""


class OutboxDamagedError(OutboxError):
    """A query found the file malformed, though it opened: see :meth:`OutboxFile.recover`."""


def _translated(func: Callable[P, T]) -> Callable[P, T]:
    """Raise the SQLite errors the outbox acts on as OutboxFullError / OutboxDamagedError."""

    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return func(*args, **kwargs)
        except sqlite3.Error as exc:
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if code in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR):
                raise OutboxFullError(str(exc)) from exc
            if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
                raise OutboxDamagedError(str(exc)) from exc
            raise

    call.__doc__ = func.__doc__
    return call


def _rollback(db: sqlite3.Connection) -> None:
    """Roll back what is left: SQLite has already rolled back after a full disk, and a
    second ROLLBACK would raise "no transaction is active" over the real error."""
    if db.in_transaction:
        db.execute("ROLLBACK")


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
        """Open (or create) the file: its events by source, events dropped, last position."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = (
                f"cannot create {self.path.parent}: {exc.strerror} "
                "(set state_dir in the config or $STATE_DIRECTORY)"
            )
            raise OutboxError(msg) from None
        existed = self.path.exists()
        try:
            problem = inspect(self.path)
            if problem is not None:
                self._rebuild(problem)
            else:
                self._connect()
            return self._state()
        except sqlite3.OperationalError as exc:
            self._close_quietly()
            if "locked" in str(exc):
                msg = f"outbox {self.path} is in use by another listend process"
                raise OutboxError(msg) from None
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR):
                if not existed:  # not a 0-byte file for the next start to call damaged
                    self.path.unlink(missing_ok=True)
                raise OutboxFullError(f"cannot open outbox {self.path}: {exc}") from None
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:  # not a database, malformed image
            self._rebuild(str(exc))
            return self._state()

    def _connect(self) -> sqlite3.Connection:
        self._close_quietly()
        db = sqlite3.connect(self.path, isolation_level=None, timeout=1.0)
        self._db = db
        db.text_factory = _text  # a damaged payload is dead-lettered, not an error here
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            log.warning("outbox %s: journal_mode is %s, not wal", self.path, mode)
        db.execute("PRAGMA synchronous=FULL")
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")
        db.executescript(_SCHEMA)
        return db

    def _state(self, before: int | None = None) -> tuple[dict[str, int], int, int]:
        """Events by source (those at positions below ``before``), dropped, last position."""
        db = self._conn()
        counts = dict(
            db.execute(
                "SELECT source, count(*) FROM outbox WHERE pos < ? GROUP BY source",
                (before if before is not None else 2**62,),
            ).fetchall()
        )
        row = db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()
        (last_pos,) = db.execute("SELECT coalesce(max(pos), 0) FROM outbox").fetchone()
        return counts, int(row[0]) if row else 0, int(last_pos)

    @_translated
    def recover(
        self, reason: str, keep: list[tuple[int, AnyEvent]], deletes: list[int], before: int
    ) -> dict[str, int]:
        """A query failed with ``reason``: if ``integrity_check`` confirms the damage, move
        the file aside and salvage it; then store ``keep`` (this run's committed events,
        still in memory) again and delete ``deletes`` (delivered). Returns the events at
        positions below ``before`` (an earlier run's), by source."""
        db = self._conn()
        try:
            found = [row[0] for row in db.execute("PRAGMA integrity_check(5)")]
        except sqlite3.DatabaseError as exc:
            found = [str(exc)]
        if found == ["ok"]:
            log.warning("outbox %s: %s, yet integrity_check passes: reopened", self.path, reason)
            self._connect()
        else:
            self._rebuild(f"{reason}; integrity_check: {'; '.join(found)}")
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            now = time.time()
            db.executemany(_INSERT, [(p, e.id, e.source, to_json(e), now) for p, e in keep])
            db.executemany("DELETE FROM outbox WHERE pos = ?", [(pos,) for pos in deletes])
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        return self._state(before)[0]

    def _rebuild(self, reason: str) -> None:
        """Move the damaged file aside, start a new one, salvage what reads; log it once."""
        self._close_quietly()
        aside = self._quarantine()
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            found = salvage(aside, db)
            if found.dropped:
                db.execute("INSERT INTO meta (key, value) VALUES ('dropped', ?)", (found.dropped,))
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        log.error(
            "outbox %s was damaged (%s): moved aside as %s; %s into a new outbox",
            self.path,
            reason,
            aside,
            found.describe(),
        )

    def _quarantine(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = Path(f"{self.path}.damaged-{stamp}")
        for n in range(1, 1000):
            if not any(Path(f"{aside}{s}").exists() for s in ("", "-wal", "-shm")):
                break
            aside = Path(f"{self.path}.damaged-{stamp}.{n}")
        for suffix in ("", "-wal", "-shm"):
            old = Path(f"{self.path}{suffix}")
            if old.exists():
                old.rename(f"{aside}{suffix}")
        return aside

    @_translated
    def probe(self) -> None:
        """A write that needs free space (after giving back the WAL's): OutboxFullError if not."""
        db = self._conn()
        with contextlib.suppress(sqlite3.OperationalError):  # the write says if there is room
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', 1)")
            db.execute("DELETE FROM meta WHERE key = 'probe'")
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise

    @_translated
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
                cursor = db.execute(_INSERT, (pos, event.id, event.source, to_json(event), now))
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
            _rollback(db)
            raise
        return ignored, dropped

    @_translated
    def positions(
        self, limit: int, known: dict[int, AnyEvent]
    ) -> list[tuple[int, str, str | None]]:
        """Positions and sources, with the payload of those not in ``known`` (stored by an
        earlier run; a membership test is safe across threads)."""
        db = self._conn()
        rows = db.execute("SELECT pos, source FROM outbox ORDER BY pos LIMIT ?", (limit,))
        found: list[tuple[int, str, str | None]] = [(pos, src, None) for pos, src in rows]
        for index, (pos, source, _) in enumerate(found):
            if pos not in known:
                (payload,) = db.execute(
                    "SELECT payload FROM outbox WHERE pos = ?", (pos,)
                ).fetchone()
                found[index] = (pos, source, payload)
        return found

    @_translated
    def delete(self, positions: list[int]) -> None:
        db = self._conn()
        db.execute("PRAGMA synchronous=NORMAL")  # no fsync for removals (see the module doc)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("DELETE FROM outbox WHERE pos = ?", [(pos,) for pos in positions])
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise
        finally:
            db.execute("PRAGMA synchronous=FULL")

    def close(self) -> None:
        try:
            if self._db is not None:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:  # a full disk: the WAL stays, and is read on next open
            log.warning("outbox %s: not checkpointed at close: %s", self.path, exc)
        finally:
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


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")
