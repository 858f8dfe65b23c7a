"""The durable outbox: one SQLite database per sink, so no transcript is lost to an outage.

Layout: ``<state_dir>/outbox/<sink>.sqlite3``, one database per sink rather than one shared
database with a sink column, because

- each sink worker is the only writer of its file, so a slow sink's deletes never wait on
  another sink's write lock, and each file needs exactly one connection and one thread;
- a sink removed from the config leaves a file that can be inspected or deleted on its own,
  and damage to one file (see :meth:`Outbox.open`) costs one sink's backlog, not all of them;
- the size bound (``max_events``) is a plain row count of that file.

The price is one fsync per sink per commit instead of one per commit; finals arrive at human
speech rate (about one per second per source), and events that arrive together (many sources)
are stored in one transaction (:meth:`Outbox.commit`, a group commit), so it is a few
fsyncs a second even with a hundred sources.

Durability: WAL journal with ``synchronous=FULL``. In WAL mode every commit is atomic and a
crash (SIGKILL) never corrupts the file or loses a commit; ``NORMAL`` would keep that but may
roll back the last commits on *power loss*, and :meth:`Outbox.commit` returning is the promise
that the events are safe, so every commit that adds events is fsynced. Commits that only
*remove* delivered events run with ``synchronous=NORMAL``: they reach the disk with the next
fsynced commit or checkpoint, so power loss right after a delivery can bring delivered events
back, to be delivered again: at-least-once, as always (consumers dedupe on ``id``), for half
the fsyncs. (Storage that acknowledges a flush before the data is on the medium, like some SD
cards, can still lose the last commits; nothing above the block layer can fix that.) The
database is opened with ``locking_mode=EXCLUSIVE``: a second daemon on the same state
directory fails clearly instead of delivering the same backlog twice.

Every SQLite call runs on the outbox's own single thread, never on the event loop: with
``synchronous=FULL`` a commit waits for an fsync, which takes milliseconds on an SD card.
Interim results are never stored here (see :mod:`listend.daemon.delivery.worker`). The
file itself (schema, pragmas, quarantine) is :mod:`listend.daemon.delivery.outbox_file`.

Faults: a full disk makes :meth:`Outbox.commit` raise :class:`OutboxFullError` with nothing stored
(the worker refuses events until :meth:`Outbox.probe` succeeds); a query that finds the file
malformed is answered by :meth:`Outbox.recover` (moved aside, salvaged, this run's events
stored again from memory) and the query retried once; a stored row that is no event (invalid
JSON, an unknown version) is held back from :meth:`peek` as :class:`Rejected`, for the dead
letters, instead of stopping the queue.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TypeVar

from listend.daemon.delivery.outbox_file import (
    Dropped,
    OutboxDamagedError,
    OutboxError,
    OutboxFile,
    OutboxFullError,
)
from listend.daemon.events import AnyEvent, from_json

__all__ = [
    "REMOVE_DELAY",
    "Dropped",
    "Outbox",
    "OutboxDamagedError",
    "OutboxError",
    "OutboxFullError",
    "Queued",
    "Rejected",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
#: Seconds a delivered event may stay in the file before its deletion is written (unless
#: a commit writes it sooner): one delete transaction per interval, not per delivery.
REMOVE_DELAY = 0.5


@dataclass(frozen=True, slots=True)
class Queued:
    """One stored event and its position in the outbox."""

    pos: int
    event: AnyEvent


@dataclass(frozen=True, slots=True)
class Rejected:
    """A stored row that is no event this version reads (invalid JSON, unknown ``v``)."""

    pos: int
    source: str
    payload: str
    error: str


class Outbox:
    """A FIFO of events for one sink, stored in SQLite; async methods run on its own thread.

    The events this process stored are also kept in memory, in order, from the moment they
    are staged: :meth:`peek` serves them from there, so a sink can deliver an event while its
    commit is still on the way to the disk (it is removed only after both). Events left by an
    earlier run (the backlog) are read from the file first.
    """

    def __init__(self, path: Path, *, max_events: int) -> None:
        self.path = path
        self.max_events = max_events
        self._executor: ThreadPoolExecutor | None = None
        self._file = OutboxFile(path, max_events=max_events)
        self._count = 0
        self._by_source: Counter[str] = Counter()
        self._events: dict[int, AnyEvent] = {}  # this run's undelivered events, by position
        self._ids: dict[str, int] = {}  # ... and their positions by event id
        self._next_pos = 1
        self._backlog = 0  # undelivered events of earlier runs (positions < _first_pos)
        self._first_pos = 1
        self._deletes: list[int] = []  # delivered; deleted from the file with the next write
        self._committed_through = 0  # every position up to here is in the file (or was)
        self._flush: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._rejected: dict[int, Rejected] = {}  # held back from peek() for the dead letters
        self._repairing = asyncio.Lock()
        self._repairs = 0  # recoveries so far: a query that failed before one is just retried
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
            counts, dropped, last_pos = await self._call(self._file.open)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._by_source = Counter(counts)
        self._count = self._backlog = sum(counts.values())
        self._next_pos = self._first_pos = last_pos + 1
        self._committed_through = last_pos
        self.dropped_total = dropped
        if self._count:
            log.info(
                "outbox %s: %d undelivered event(s) from a previous run", self.path, self._count
            )

    def stage(self, events: Sequence[AnyEvent]) -> list[tuple[int, AnyEvent]]:
        """Queue ``events`` (deliverable from now on); :meth:`commit` makes them durable."""
        staged = []
        for event in events:
            if event.id in self._ids:
                continue  # the same event twice is stored once
            pos = self._next_pos
            self._next_pos += 1
            self._events[pos] = event
            self._ids[event.id] = pos
            self._count += 1
            self._by_source[event.source] += 1
            staged.append((pos, event))
        return staged

    async def commit(
        self, staged: list[tuple[int, AnyEvent]], *, keep_through: int = 0
    ) -> list[Dropped]:
        """Write staged events (and pending deletions) in one fsynced transaction."""
        if not staged:
            return []
        through = max(self._committed_through, staged[-1][0])
        deletes = [pos for pos in self._deletes if pos <= through]  # never before the insert
        self._deletes = [pos for pos in self._deletes if pos > through]
        try:
            ignored, dropped = await self._call_repairing(
                self._file.insert, staged, keep_through, deletes
            )
        except BaseException:
            self._deletes[:0] = deletes
            for pos, _ in staged:
                self._discard(pos)
            raise
        self._committed_through = max(self._committed_through, staged[-1][0])
        for pos in ignored:  # already stored by an earlier run
            self._discard(pos)
        for item in dropped:
            if self._discard(item.pos) is None and item.pos < self._first_pos:
                self._backlog -= 1
                self._forget(item.source)
        self.dropped_total += len(dropped)
        return dropped

    def peek_now(self, limit: int) -> list[Queued] | None:
        """:meth:`peek` from memory; None while an earlier run's backlog must be read first."""
        if self._backlog:
            return None
        return [Queued(pos, event) for pos, event in islice(self._events.items(), limit)]

    async def peek(self, limit: int) -> list[Queued]:
        """The oldest ``limit`` events, in order, without removing them."""
        if (now := self.peek_now(limit)) is not None:
            return now
        skip = set(self._deletes) | set(self._rejected)
        rows = await self._call_repairing(self._file.positions, limit + len(skip), self._events)
        queued: list[Queued] = []
        for pos, source, payload in rows:
            if pos in skip or len(queued) == limit:
                continue  # delivered (its deletion is not written yet), or rejected
            if payload is None:
                event = self._events.get(pos)
            else:
                try:
                    event = from_json(payload)
                except ValueError as exc:  # pydantic's ValidationError is one
                    reason = str(exc).splitlines()
                    self._rejected[pos] = Rejected(pos, source, payload, " ".join(reason[:3]))
                    continue
            if event is not None:  # None: dropped for room while we looked
                queued.append(Queued(pos, event))
        return queued

    def rejected(self) -> list[Rejected]:
        """Rows :meth:`peek` held back: dead-letter them, then :meth:`discard_rejected`."""
        return list(self._rejected.values())

    async def discard_rejected(self, items: Sequence[Rejected]) -> None:
        """Forget rejected rows (written to the dead letters): they leave with the next write."""
        for item in items:
            if self._rejected.pop(item.pos, None) is not None:
                self._backlog -= 1
                self._forget(item.source)
                self._deletes.append(item.pos)
        await self._schedule_flush()

    async def remove(self, items: Sequence[Queued]) -> None:
        """Forget delivered events (the sink confirmed them). They leave the file with the
        next write, or within REMOVE_DELAY: a crash before that delivers them again."""
        for item in items:
            if self._discard(item.pos) is not None:
                self._deletes.append(item.pos)
            elif item.pos < self._first_pos and item.pos not in self._deletes:
                self._backlog -= 1
                self._forget(item.event.source)
                self._deletes.append(item.pos)
        await self._schedule_flush()

    async def probe(self) -> None:
        """Raise :class:`OutboxFullError` unless the file takes a write again (free space)."""
        await self._call(self._file.probe)

    async def recover(self, reason: str) -> None:
        """The file turned out damaged while in use: move it aside, salvage what reads, and
        store this run's committed, undelivered events again (they are still in memory)."""
        through = self._committed_through
        keep = [(pos, event) for pos, event in self._events.items() if pos <= through]
        deletes = [pos for pos in self._deletes if pos <= through]
        self._deletes = [pos for pos in self._deletes if pos > through]
        counts = await self._call(self._file.recover, reason, keep, deletes, self._first_pos)
        self._repairs += 1
        self._rejected.clear()
        self._by_source = Counter(counts)
        for event in self._events.values():
            self._by_source[event.source] += 1
        self._backlog = sum(counts.values())
        self._count = self._backlog + len(self._events)

    async def _schedule_flush(self) -> None:
        if self._deletes and self._flush is None:
            loop = asyncio.get_running_loop()
            self._flush = loop.call_later(REMOVE_DELAY, self._flush_soon)

    async def close(self) -> None:
        if self._executor is None:
            return
        try:
            await self._flush_deletes()
            await self._call(self._file.close)
        finally:
            self._executor.shutdown(wait=False)
            self._executor = None

    def _flush_soon(self) -> None:
        self._flush = None
        task = asyncio.get_running_loop().create_task(self._flush_deletes())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush_deletes(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        through = self._committed_through  # a row not inserted yet is deleted by its commit
        deletes = [pos for pos in self._deletes if pos <= through]
        self._deletes = [pos for pos in self._deletes if pos > through]
        if deletes and self._executor is not None:
            try:
                await self._call_repairing(self._file.delete, deletes)
            except OutboxFullError as exc:  # the worker reports a full disk (once)
                log.debug("outbox %s: delivered events not deleted yet: %s", self.path, exc)
                self._deletes[:0] = deletes
            except (sqlite3.Error, OutboxError) as exc:
                log.warning("outbox %s: delivered events not deleted yet: %s", self.path, exc)
                self._deletes[:0] = deletes

    def _discard(self, pos: int) -> AnyEvent | None:
        """Drop this run's event at ``pos`` from memory and the counts (None if not there)."""
        event = self._events.pop(pos, None)
        if event is not None:
            self._ids.pop(event.id, None)
            self._forget(event.source)
        return event

    def _forget(self, source: str) -> None:
        self._count -= 1
        self._by_source[source] -= 1
        if self._by_source[source] <= 0:
            del self._by_source[source]

    async def _call_repairing(self, func: Callable[..., T], *args: object) -> T:
        """``_call``; if the file turns out damaged, :meth:`recover` and call once more."""
        repairs = self._repairs
        try:
            return await self._call(func, *args)
        except OutboxDamagedError as exc:
            async with self._repairing:
                if self._repairs == repairs:  # nobody recovered it meanwhile
                    await self.recover(str(exc))
        return await self._call(func, *args)

    async def _call(self, func: Callable[..., T], *args: object) -> T:
        if self._executor is None:
            raise OutboxError(f"outbox {self.path} is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, func, *args)
