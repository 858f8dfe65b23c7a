"""Recovering an outbox file from damage: spot what SQLite would ignore, salvage what reads.

SQLite is silent about two kinds of loss: it treats a 0-byte file as a new database, and it
ignores a write-ahead log (WAL) whose header is garbage and every frame after the first that
fails its checksum, so commits there vanish without an error. :func:`inspect` looks for both
before the file is opened. :func:`salvage` copies the rows that still read from a damaged file
(moved aside first, read through a scratch copy so the evidence stays as it was found) into
a fresh one, stepping over unreadable pages.

Every function runs on the outbox's own thread.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_WAL_MAGIC = (0x377F0682, 0x377F0683)  # checksums of little- / big-endian words
_WAL_HEADER = 32
_FRAME_HEADER = 24
_MIN_PAGE = 512
_MAX_PAGE = 65536
PAGE = 4096
_DB_HEADER = 100
_MAX_PAD = 1 << 32  # a header claiming more is itself garbage
#: Consecutive unreadable spots a salvage steps over before it gives up on the rest.
MAX_SKIPS = 64


def wal_path(path: Path) -> Path:
    return Path(f"{path}-wal")


def inspect(path: Path) -> str | None:
    """Why ``path`` (with its WAL) would lose events silently if opened as it is, or None."""
    wal = wal_path(path)
    wal_size = wal.stat().st_size if wal.exists() else 0
    if not path.exists():
        return f"a WAL of {wal_size} bytes without its database" if wal_size else None
    if path.stat().st_size == 0:
        if wal_size:
            return f"the database is empty (0 bytes) but its WAL holds {wal_size} bytes"
        return "the file is empty (0 bytes): whatever it held is lost"
    return _wal_problem(wal.read_bytes(), wal) if wal_size else None


def _wal_problem(data: bytes, wal: Path) -> str | None:
    """What is wrong with a WAL SQLite would silently ignore part of (see the WAL format)."""
    if len(data) < _WAL_HEADER:
        return f"the WAL is truncated inside its header ({len(data)} bytes)"
    magic, _version, page_size, _ckpt, salt1, salt2, c1, c2 = struct.unpack(">8I", data[:32])
    if magic not in _WAL_MAGIC or page_size < _MIN_PAGE or page_size & (page_size - 1):
        return f"the WAL's header is garbage: {len(data)} bytes of it ignored"
    order = "<" if magic == _WAL_MAGIC[0] else ">"
    sums = _checksum(order, data[:24], (0, 0))
    if sums != (c1, c2):
        return f"the WAL's header fails its checksum: {len(data)} bytes of it ignored"
    return _frames_problem(data, wal, page_size, order, (salt1, salt2, *sums))


def _frames_problem(
    data: bytes, wal: Path, page_size: int, order: str, start: tuple[int, int, int, int]
) -> str | None:
    salts, sums = start[:2], start[2:]
    frame = _FRAME_HEADER + page_size
    offset, frames = _WAL_HEADER, 0
    while offset + frame <= len(data):
        header = struct.unpack(">6I", data[offset : offset + _FRAME_HEADER])
        if (header[2], header[3]) != salts:
            return None  # frames of an earlier generation of the WAL: stale, not damage
        sums = _checksum(order, data[offset : offset + 8], sums)
        sums = _checksum(order, data[offset + _FRAME_HEADER : offset + frame], sums)
        if sums != (header[4], header[5]):
            rest = len(data) - offset
            return f"the WAL is damaged at frame {frames + 1}: {rest} bytes of it ignored"
        offset += frame
        frames += 1
    tail = len(data) - offset
    if tail not in (0, _FRAME_HEADER):  # a SIGKILL mid-append leaves a frame header at most
        log.warning(
            "outbox %s: ends in a partial frame (%d bytes after frame %d): a write that "
            "failed (a full disk) lost nothing stored; a truncated WAL lost its last commits",
            wal,
            tail,
            frames,
        )
    return None


def _checksum(order: str, data: bytes, sums: tuple[int, int]) -> tuple[int, int]:
    s0, s1 = sums
    words = struct.unpack(f"{order}{len(data) // 4}I", data)
    for index in range(0, len(words), 2):
        s0 = (s0 + words[index] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[index + 1] + s0) & 0xFFFFFFFF
    return s0, s1


@dataclass
class Salvage:
    """What a salvage read from a damaged file."""

    rows: int = 0
    dropped: int = 0
    #: Positions around which rows could not be read (``(after, before)``; before 0: the end).
    gaps: list[tuple[int, int]] = field(default_factory=list)
    error: str | None = None  # why reading stopped early, if it did

    def describe(self) -> str:
        text = f"salvaged {self.rows} event(s)"
        if self.gaps:
            spans = ", ".join(f"{a + 1}..{b - 1 if b else 'end'}" for a, b in self.gaps[:5])
            text += f"; rows at positions {spans} could not be read and are lost"
        elif self.error:
            text += f"; the rest could not be read ({self.error}) and is lost"
        return text


def salvage(damaged: Path, into: sqlite3.Connection) -> Salvage:
    """Copy the readable rows of ``damaged`` (and its WAL) into the ``outbox`` table of
    ``into`` (in the caller's transaction), keeping their positions."""
    result = Salvage()
    with tempfile.TemporaryDirectory(dir=damaged.parent, prefix=".salvage-") as scratch:
        copy = Path(scratch) / "outbox.sqlite3"
        for source, target in ((damaged, copy), (wal_path(damaged), wal_path(copy))):
            if source.exists():
                shutil.copyfile(source, target)
        _pad(copy)
        try:
            db = sqlite3.connect(copy, isolation_level=None)
        except sqlite3.Error as exc:
            result.error = str(exc)
            return result
        db.text_factory = lambda raw: raw.decode("utf-8", "replace")
        try:
            db.execute("PRAGMA locking_mode=EXCLUSIVE")  # no -shm beside the copy
            _copy_rows(db, into, result)
            with contextlib.suppress(sqlite3.Error, TypeError):
                row = db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()
                result.dropped = int(row[0]) if row else 0
        except sqlite3.Error as exc:  # not even the schema reads
            result.error = str(exc)
        finally:
            db.close()
    return result


def _pad(copy: Path) -> None:
    """Give SQLite a file it will read from: a truncated database grows back to the size its
    header claims (the lost pages read as zeros, so as damage that is stepped over), and a
    missing or empty one gets an empty first page, or SQLite would delete the WAL unread."""
    wal = wal_path(copy)
    data = copy.read_bytes()[:100] if copy.exists() else b""
    if len(data) < _DB_HEADER:
        header = wal.read_bytes()[:_WAL_HEADER] if wal.exists() else b""
        if len(header) == _WAL_HEADER:
            page_size = struct.unpack(">I", header[8:12])[0]
            with copy.open("wb") as handle:
                handle.truncate(page_size if _MIN_PAGE <= page_size <= _MAX_PAGE else PAGE)
        return
    page_size = struct.unpack(">H", data[16:18])[0]
    page_size = _MAX_PAGE if page_size == 1 else page_size
    (pages,) = struct.unpack(">I", data[28:32])
    claimed = page_size * pages
    if copy.stat().st_size < claimed <= _MAX_PAD:
        with copy.open("r+b") as handle:
            handle.truncate(claimed)


def _copy_rows(db: sqlite3.Connection, into: sqlite3.Connection, result: Salvage) -> None:
    last, skip, skips = 0, 1, 0
    while skips <= MAX_SKIPS:
        try:
            for row in db.execute(
                "SELECT pos, event_id, source, payload, enqueued_at FROM outbox NOT INDEXED "
                "WHERE pos > ? ORDER BY pos",
                (last,),
            ):
                cursor = into.execute(
                    "INSERT OR IGNORE INTO outbox (pos, event_id, source, payload, enqueued_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (int(row[0]), str(row[1]), str(row[2]), str(row[3]), float(row[4] or 0)),
                )
                result.rows += cursor.rowcount
                if result.gaps and result.gaps[-1][1] == 0:
                    result.gaps[-1] = (result.gaps[-1][0], int(row[0]))
                last, skip = int(row[0]), 1
        except (sqlite3.DatabaseError, TypeError, ValueError) as exc:
            if result.rows == 0 and last == 0 and skips == 0:
                result.error = str(exc)
            if not result.gaps or result.gaps[-1][1] != 0:
                result.gaps.append((last, 0))
            skips += 1
            last += skip
            skip = min(skip * 2, 1 << 16)
        else:
            return
    result.error = result.error or "too many unreadable pages"
