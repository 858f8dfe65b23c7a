"""The history database: finals and phrase events in SQLite with an FTS5 index.

One writer (the ``history`` sink, in its own thread) and any number of read-only searchers
(``listend search``, the captions page). WAL journal, so searches never wait for the writer;
``auto_vacuum=INCREMENTAL``, so what retention deletes is given back to the file system and
``max_mb`` bounds the file itself. An entry's rowid is its start time in microseconds, so
rowid order is time order (also for events recovered from the spool, which arrive late) and
time bounds are rowid ranges. Searches walk the full-text index newest first (``ORDER BY
rowid DESC`` is FTS5's native order) within that range and stop at ``limit``, so their cost
does not grow with the size of the history.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from listend.api import AnyEvent, PhraseEvent, TranscriptEvent, to_json

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    rowid INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL NOT NULL,
    text TEXT NOT NULL,
    event TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS entries_fts USING fts5 (
    text, content = 'entries', content_rowid = 'rowid', tokenize = 'unicode61'
);
CREATE TRIGGER IF NOT EXISTS entries_ai AFTER INSERT ON entries BEGIN
    INSERT INTO entries_fts (rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER IF NOT EXISTS entries_ad AFTER DELETE ON entries BEGIN
    INSERT INTO entries_fts (entries_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;
"""
INSERT = (
    "INSERT INTO entries (rowid, event_id, source, kind, started_at, ended_at, text, event) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING"
)
PRUNE_MIN = 100  # entries deleted per step at least, when over max_mb
SIZE_TARGET = 0.9  # prune to this share of max_mb, so not every batch prunes again
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_WORD = re.compile(r"[\w']+\*?")


def parse_duration(text: str | float) -> float:
    """``90``, ``"90s"``, ``"15m"``, ``"2h"``, ``"30d"``, ``"1w"`` -> seconds."""
    if isinstance(text, int | float):
        return float(text)
    found = _DURATION.match(text)
    if found is None:
        raise ValueError(f"expected a duration such as 90s, 15m, 2h, 30d; found {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def parse_when(text: str, now: float | None = None) -> float:
    """``2h`` (that long ago) or an ISO date/time (local time unless it says) -> Unix time."""
    now = time.time() if now is None else now
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        msg = f"expected 2h, 30m, 7d or a date like 2026-12-01T08:00; found {text!r}"
        raise ValueError(msg) from None


def match_expression(query: str) -> str:
    """Words of ``query`` as an FTS5 expression: every word must occur (``word*``: a prefix)."""
    words = _WORD.findall(query.lower())
    if not words:
        raise ValueError("the query has no words to search for")
    terms = []
    for word in words:
        prefix = word.endswith("*")
        quoted = '"' + word.rstrip("*").replace('"', '""') + '"'
        terms.append(quoted + "*" * prefix)
    return " ".join(terms)


@dataclass(frozen=True, slots=True)
class Hit:
    event: dict[str, Any]
    snippet: str


def _key(unix_time: float) -> int:
    return int(unix_time * 1_000_000)


def _row(event: AnyEvent) -> tuple[int, str, str, str, float, float, str, str] | None:
    if isinstance(event, TranscriptEvent):
        if not event.is_final or not event.text.strip():
            return None
        started, ended = event.started_at, event.ended_at
    elif isinstance(event, PhraseEvent):
        started, ended = event.started_at, event.at
    else:
        return None
    return (
        _key(started.timestamp()),
        event.id,
        event.source,
        event.kind,
        started.timestamp(),
        ended.timestamp(),
        event.text,
        to_json(event),
    )


class HistoryStore:
    """The writer's connection (one thread uses it) or, with ``readonly``, a searcher's."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        if readonly:
            if not path.exists():
                raise FileNotFoundError(f"{path}: no history database")
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, isolation_level=None)
            self.db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # before the first table
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints
            self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- writing -----------------------------------------------------------------------------

    def add(self, events: Iterable[AnyEvent]) -> int:
        """Store the events (those already stored are skipped: delivery is at-least-once)."""
        rows = [row for event in events if (row := _row(event)) is not None]
        if not rows:
            return 0
        try:
            with self._transaction():
                return self.db.executemany(INSERT, rows).rowcount  # triggers' rows not counted
        except sqlite3.IntegrityError:
            pass  # two entries in one microsecond (rolled back): one by one, the slow way
        with self._transaction():
            return sum(self._insert_one(row) for row in rows)

    def _insert_one(self, row: tuple[int, str, str, str, float, float, str, str]) -> int:
        key, rest = row[0], row[1:]
        while True:
            try:
                return self.db.execute(INSERT, (key, *rest)).rowcount
            except sqlite3.IntegrityError:
                key += 1  # the next microsecond: still in time order

    def _transaction(self) -> _Commit:
        self.db.execute("BEGIN IMMEDIATE")
        return _Commit(self.db)

    def size_bytes(self) -> int:
        """The file's used size (pages not on the free list)."""
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        size: int = self.db.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def prune(
        self, *, max_age: float | None, max_bytes: int | None, now: float | None = None
    ) -> int:
        """Delete what is older than ``max_age`` seconds, then the oldest while over
        ``max_bytes``; give the space back. Returns how many entries went."""
        now = time.time() if now is None else now
        deleted = 0
        if max_age is not None:
            with self._transaction():
                cursor = self.db.execute(
                    "DELETE FROM entries WHERE rowid < ?", (_key(now - max_age),)
                )
                deleted += cursor.rowcount
        if max_bytes is not None and self.size_bytes() > max_bytes:
            while (size := self.size_bytes()) > max_bytes * SIZE_TARGET:
                share = 1 - max_bytes * SIZE_TARGET / size  # of the entries, oldest first
                with self._transaction():
                    cursor = self.db.execute(
                        "DELETE FROM entries WHERE rowid IN "
                        "(SELECT rowid FROM entries ORDER BY rowid LIMIT ?)",
                        (max(PRUNE_MIN, math.ceil(self.count() * share)),),
                    )
                    # deleting only adds tombstones to the index: merge them away
                    self.db.execute("INSERT INTO entries_fts (entries_fts) VALUES ('optimize')")
                if not cursor.rowcount:
                    break
                deleted += cursor.rowcount
        if deleted:
            # sqlite3_exec steps it to the end (execute() would free a single page)
            self.db.executescript("PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);")
        return deleted

    # -- searching ---------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        sources: Sequence[str] = (),
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        marks: tuple[str, str] = ("[", "]"),
    ) -> list[Hit]:
        """The newest ``limit`` entries matching every word of ``query``, oldest first."""
        where = ["entries_fts MATCH ?"]
        params: list[Any] = [match_expression(query)]
        if since is not None:
            where.append("entries_fts.rowid >= ?")
            params.append(_key(since))
        if until is not None:
            where.append("entries_fts.rowid < ?")
            params.append(_key(until))
        if sources:
            where.append(f"e.source IN ({', '.join('?' * len(sources))})")
            params.extend(sources)
        conditions = " AND ".join(where)  # only placeholders: the values are parameters
        sql = (
            "SELECT e.event, snippet(entries_fts, 0, ?, ?, '…', 16) FROM entries_fts "  # noqa: S608
            "JOIN entries AS e ON e.rowid = entries_fts.rowid "
            f"WHERE {conditions} ORDER BY entries_fts.rowid DESC LIMIT ?"
        )
        rows = self.db.execute(sql, [*marks, *params, limit]).fetchall()
        return [Hit(json.loads(event), snippet) for event, snippet in reversed(rows)]

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM entries").fetchone()[0])


class _Commit:
    """``with store._transaction():`` commits on success, rolls back on an error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
