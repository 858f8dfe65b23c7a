"""The router's side of a sink worker: events in, staged in the outbox, commits scheduled.

Stored kinds are staged in the outbox's memory (deliverable at once) and their commit starts
at once (:mod:`listend.daemon.delivery.commits`); interim results are never stored: each
source's latest one waits in memory (latest wins). :meth:`Intake.take` is the synchronous way
in (the router's :meth:`~listend.daemon.delivery.router.Router.offer`), and an idle worker
starts the delivery from there too (``Sink.send_now``): from the task that produced a final to
the sink's socket, no task hop, each of which would wait a loop iteration behind every other
stream's audio.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any

from listend.daemon.delivery.commits import MAX_UNCOMMITTED, Commits
from listend.daemon.delivery.gaps import Gaps
from listend.daemon.delivery.outbox import Outbox, Queued
from listend.daemon.delivery.refusal import Refusal
from listend.daemon.events import AnyEvent, TranscriptEvent
from listend.daemon.plugin.sink import OutboxOptions, Sink

log = logging.getLogger(__name__)


class Intake:
    """Accepts events for one sink, in order; the worker (a subclass) delivers them."""

    def __init__(self, sink: Sink, outbox: Outbox, refusal: Refusal, gaps: Gaps) -> None:
        self.sink = sink
        self.options: OutboxOptions = sink.outbox_options
        self.outbox = outbox
        self._interims: dict[str, TranscriptEvent] = {}
        self._wakeup = asyncio.Event()  # the worker task: something to deliver, or closing
        self._space = asyncio.Event()  # room in the outbox again (``policy: block``)
        self._inflight_through = 0  # outbox positions being delivered (drop_oldest spares)
        self._idle = False  # the worker task waits for events, nothing in flight
        self._sending: tuple[list[Queued], Coroutine[Any, Any, None]] | None = None  # send_now
        self._closing = False
        self._started = False
        self.refusal = refusal
        self.commits = Commits(
            outbox,
            refusal,
            name=sink.name,
            keep_through=lambda: self._inflight_through,
            on_dropped=gaps.note,
        )

    async def open(self) -> None:
        raise NotImplementedError

    async def put(self, event: AnyEvent) -> None:
        """Accept an event (see :meth:`put_many`)."""
        await self.put_many([event])

    async def put_many(self, events: Sequence[AnyEvent]) -> None:
        """Accept events in order; stored kinds are deliverable when this returns, and their
        commit starts at once (or with the next batch). It waits for that commit only under
        ``policy: block``, when the outbox is full, or when MAX_UNCOMMITTED are waiting."""
        if self.can_take(len(events)):
            self.take(events)
            return
        for run in self._runs(events):
            if isinstance(run, TranscriptEvent):
                self._keep_interim(run)
            else:
                await self._store(run)

    def can_take(self, count: int) -> bool:
        """Whether :meth:`take` may accept ``count`` events now: nothing to wait for (started,
        room in the outbox, commits not backed up, no ``policy: block``)."""
        return (
            self._started
            and self.options.policy != "block"
            and len(self.outbox) + count <= self.options.max_events
            and self.commits.pending + count < MAX_UNCOMMITTED
            and not self.commits.failed
        )

    def take(self, events: Sequence[AnyEvent]) -> None:
        """:meth:`put_many` without waiting, once :meth:`can_take` said so (the router's
        synchronous path: no task hop between a session and its sinks)."""
        for run in self._runs(events):
            if isinstance(run, TranscriptEvent):
                self._keep_interim(run)
            else:
                self._stage_soon(run)

    def _runs(self, events: Sequence[AnyEvent]) -> Iterator[TranscriptEvent | list[AnyEvent]]:
        """Each interim alone, the stored kinds in runs between them (what came before an
        interim stays before it); one event per run under ``policy: block`` (room is checked
        event by event)."""
        run: list[AnyEvent] = []
        for event in events:
            if isinstance(event, TranscriptEvent) and not event.is_final:
                if run:
                    yield run
                    run = []
                yield event
            else:
                run.append(event)
                if self.options.policy == "block":
                    yield run
                    run = []
        if run:
            yield run

    def _keep_interim(self, event: TranscriptEvent) -> None:
        self._interims.pop(event.source, None)  # latest wins, and moves to the back
        self._interims[event.source] = event
        self._wakeup.set()

    def _stage_soon(self, events: list[AnyEvent]) -> None:
        if not events:
            return
        if self.refusal.active:
            self.refusal.refuse(len(events))
            return
        self._stage(events)
        self.commits.soon()

    async def _store(self, events: list[AnyEvent]) -> None:
        if not events:
            return
        if not self._started:
            await self.open()
        if self.refusal.active:
            self.refusal.refuse(len(events))
            return
        if self.options.policy == "block":
            while len(self.outbox) >= self.options.max_events:
                self._space.clear()
                await self._space.wait()
        self._stage(events)
        if (
            self.options.policy == "block"
            or len(self.outbox) > self.options.max_events  # full: drop what it must now
            or self.commits.pending >= MAX_UNCOMMITTED
        ):
            await self.commit()
        else:
            self.commits.soon()

    def _stage(self, events: list[AnyEvent]) -> None:
        """Into the outbox's memory (deliverable now) and the next commit."""
        staged = self.outbox.stage(events)
        for event in events:
            if event.kind == "final":
                self._interims.pop(event.source, None)  # the final supersedes it
        self._wakeup.set()  # deliver while the commit is on its way to the disk
        self.commits.add(staged)
        self._send_now()

    def _send_now(self) -> None:
        """Idle, and the outbox holds only what was just staged: start the delivery from here
        (the task that produced the event: it leaves in this loop iteration, not after a hop
        to the worker's task, which then awaits the confirmation)."""
        if not self._idle or self._closing or self._interims:
            return
        batch = self.outbox.peek_now(self.sink.max_batch)
        if not batch or self.outbox.rejected():
            return
        try:
            sending = self.sink.send_now([item.event for item in batch])
        except Exception:  # a sink bug: the worker delivers as usual (and retries)
            log.exception("sink %s: send_now() raised unexpectedly", self.sink.name)
            return
        if sending is not None:
            self._idle = False
            self._inflight_through = batch[-1].pos  # drop_oldest must not drop these
            self._sending = (batch, sending)

    async def commit(self) -> None:
        """Write the events staged so far to the outbox (fsynced), in order."""
        await self.commits.commit()

    def committed(self) -> asyncio.Future[None]:
        """Done once every event accepted so far is in the outbox file: the end-to-end
        acknowledgement that lets a session free the audio of its finals."""
        return self.commits.committed()
