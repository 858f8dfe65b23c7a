"""When a sink worker's staged events are written to its outbox (the commit scheduling).

No fixed group-commit window: a commit starts as soon as events are staged and no commit is
running, so at low load an event is durable one fsync after it arrived. Events staged while
a commit is on its way to the disk wait for it and then go together in the next one, so
batching happens exactly when commits queue up (many sources, a slow SD card), one fsync for
all of them. Delivery never waits for any of this: staged events are deliverable at once.

:meth:`Commits.committed` is the end-to-end acknowledgement: it is done once everything
staged before the call is in the file, batch by batch, so a steady stream of events never
holds back the acknowledgement of those already written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from listend.daemon.delivery.outbox import Dropped, Outbox, OutboxFullError
from listend.daemon.delivery.refusal import Refusal
from listend.daemon.events import AnyEvent

__all__ = ["MAX_UNCOMMITTED", "Commits"]

#: Staged events past this make the router wait for the commit (backpressure).
MAX_UNCOMMITTED = 1024

Waiters = list[asyncio.Future[None]]


class Commits:
    """The writer of one outbox: stages go to the disk in order, one commit at a time."""

    def __init__(
        self,
        outbox: Outbox,
        refusal: Refusal,
        *,
        name: str,
        keep_through: Callable[[], int],
        on_dropped: Callable[[list[Dropped]], None],
    ) -> None:
        self.outbox = outbox
        self.refusal = refusal
        self.name = name
        self._keep_through = keep_through  # positions a delivery holds (drop_oldest spares)
        self._on_dropped = on_dropped
        self._pending: list[tuple[int, AnyEvent]] = []
        self._next: Waiters = []  # done when the pending events are written
        self._writing: Waiters = []  # done when the commit on its way returns
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.staged = 0  # events handed to add(), over the worker's life
        self.written = 0  # ... of them, written (or refused: a full disk)

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def failed(self) -> bool:
        """The last background commit raised (:meth:`soon` raises it with the next events)."""
        task = self._task
        return (
            task is not None
            and task.done()
            and not task.cancelled()
            and task.exception() is not None
        )

    def add(self, staged: list[tuple[int, AnyEvent]]) -> None:
        """Take staged events; the caller then calls :meth:`soon` or awaits :meth:`commit`."""
        self._pending.extend(staged)
        self.staged += len(staged)

    def soon(self) -> None:
        """Commit the pending events now, in a task of its own (or with the next batch, if a
        commit is running). A failure of the last one is raised here, as if this add failed."""
        task = self._task
        if task is not None and task.done():
            self._task = None
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error  # the outbox cannot be written
        if self._task is None:
            name = f"listend[sink:{self.name}].commit"
            self._task = asyncio.create_task(self.commit(), name=name)

    async def commit(self) -> None:
        """Write everything pending (fsynced), in order; batches formed while one is written."""
        async with self._lock:
            while self._pending or self._next:
                batch, self._pending = self._pending, []
                self._writing, self._next = self._next, []
                if batch:
                    await self._write(batch)
                waiters, self._writing = self._writing, []
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)

    async def _write(self, batch: list[tuple[int, AnyEvent]]) -> None:
        try:
            dropped = await self.outbox.commit(batch, keep_through=self._keep_through())
        except OutboxFullError as exc:  # nothing of the batch stored: refused, not fatal
            self.refusal.refuse(len(batch), exc)
        else:
            if dropped:
                self._on_dropped(dropped)
        self.written += len(batch)

    def committed(self) -> asyncio.Future[None]:
        """Done once every event staged so far is in the outbox file."""
        waiter = asyncio.get_running_loop().create_future()
        if self._pending:
            self._next.append(waiter)
        elif self._lock.locked():
            self._writing.append(waiter)
        else:
            waiter.set_result(None)
        return waiter

    async def finish(self) -> None:
        """Before the outbox closes: what is staged goes to disk (the next start sends it)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.outbox.is_open:
            await self.commit()
