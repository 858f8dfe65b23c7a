"""Fan events out from stream sessions to the sinks that asked for them.

A session may pass ``on_commit`` with a final: it is called once the final is committed to the
outbox of every sink it was routed to (the end-to-end acknowledgement; until then the session
keeps the final's audio, in memory and in its spool).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Protocol

from listend.daemon.events import AnyEvent, EventKind

log = logging.getLogger(__name__)

ROUTER_QUEUE_SIZE = 1024
ROUTER_BATCH = 256  # events forwarded together at most (a sink stores them in one commit)

OnCommit = Callable[[], None]


class EventTarget(Protocol):
    """Anything that accepts events for one sink (its delivery worker)."""

    async def put(self, event: AnyEvent) -> None: ...

    async def put_many(self, events: Sequence[AnyEvent]) -> None:
        """Accept events in order (stored together: one commit for the batch)."""

    def can_take(self, count: int) -> bool:
        """Whether :meth:`take` would accept ``count`` events now, without waiting."""

    def take(self, events: Sequence[AnyEvent]) -> None:
        """``put_many`` without waiting (only after ``can_take`` said so)."""

    def committed(self) -> asyncio.Future[None]:
        """Done once everything accepted so far is committed to the outbox."""


class Publisher:
    """A session's way in: ``await publisher(event, on_commit)`` is :meth:`Router.publish`;
    ``publisher.offer(...)`` is :meth:`Router.offer` (the session's queue tries it first)."""

    def __init__(self, router: Router) -> None:
        self.offer = router.offer
        self._publish = router.publish

    async def __call__(self, event: AnyEvent, on_commit: OnCommit | None = None) -> None:
        await self._publish(event, on_commit)


class Router:
    """Sessions ``publish`` into a bounded queue; one task moves events to sink workers.

    Per-source order is kept because one task forwards events in arrival order and each sink
    worker is FIFO. What has queued up while a sink was storing the previous events is
    forwarded as one batch, so a hundred sources cost a sink one fsync, not a hundred.

    :meth:`offer` is the short way: when nothing is queued or being forwarded and every sink
    takes the event without waiting, the session's own task hands it on, with no hop through
    the router's task (each hop waits a loop iteration, behind every other stream's audio).
    """

    def __init__(
        self, routes: Mapping[str, Sequence[str]], kinds: Mapping[str, Sequence[EventKind]]
    ) -> None:
        self._routes = {source: tuple(sinks) for source, sinks in routes.items()}
        self._kinds = {sink: frozenset(k) for sink, k in kinds.items()}
        self._source_kinds: dict[str, frozenset[EventKind]] = {}
        self._targets: dict[str, EventTarget] = {}
        self.queue: asyncio.Queue[tuple[AnyEvent, OnCommit | None] | None] = asyncio.Queue(
            ROUTER_QUEUE_SIZE
        )
        self.on_event: list[Callable[[AnyEvent], None]] = []
        self.forwarded = 0  # events fully handed on; the watchdog checks that it moves
        self._forwarding = asyncio.Lock()
        self._acked: asyncio.Future[object] | None = None  # the last batch's acknowledgement
        self.publisher = Publisher(self)  # what sessions are given to publish with

    def kinds_for(self, source: str) -> frozenset[EventKind]:
        """What the sinks of ``source`` receive (a session builds nothing else)."""
        kinds = self._source_kinds.get(source)
        if kinds is None:
            kinds = frozenset()
            for sink in self._routes.get(source, ()):
                kinds |= self._kinds.get(sink, frozenset())
            self._source_kinds[source] = kinds
        return kinds

    def attach(self, sink: str, target: EventTarget) -> None:
        self._targets[sink] = target

    def detach(self, sink: str) -> None:
        self._targets.pop(sink, None)

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Hold events in the queue while sink workers are swapped (reload)."""
        async with self._forwarding:
            yield

    def set_routes(
        self, routes: Mapping[str, Sequence[str]], kinds: Mapping[str, Sequence[EventKind]]
    ) -> None:
        self._routes = {source: tuple(sinks) for source, sinks in routes.items()}
        self._kinds = {sink: frozenset(k) for sink, k in kinds.items()}
        self._source_kinds = {}

    async def publish(self, event: AnyEvent, on_commit: OnCommit | None = None) -> None:
        if not self.offer(event, on_commit):
            await self.queue.put((event, on_commit))

    def offer(self, event: AnyEvent, on_commit: OnCommit | None = None) -> bool:
        """Forward ``event`` now if nothing is queued before it, no batch is being forwarded
        (or held by :meth:`paused`) and each of its sinks takes it without waiting; False:
        nothing was done (``publish`` queues it)."""
        if not self.queue.empty() or self._forwarding.locked():
            return False
        per_sink = self._per_sink([event])
        for sink, events in per_sink.items():
            target = self._targets.get(sink)
            if target is not None and not target.can_take(len(events)):
                return False
        self._run_hooks([event])
        for sink, events in per_sink.items():
            target = self._targets.get(sink)
            if target is None:
                _dropped(sink, events)
            else:
                target.take(events)
        if on_commit is not None:
            self._acknowledge_batch([on_commit], per_sink)
        self.forwarded += 1
        return True

    async def run(self) -> None:
        """Forward events until a ``None`` sentinel arrives (see :meth:`close`)."""
        done = False
        while not done:
            batch: list[tuple[AnyEvent, OnCommit | None]] = []
            item = await self.queue.get()
            while True:
                if item is None:
                    done = True
                    break
                batch.append(item)
                if len(batch) >= ROUTER_BATCH or self.queue.empty():
                    break
                item = self.queue.get_nowait()
            async with self._forwarding:
                await self._forward_batch(batch)
            self.forwarded += len(batch)

    async def _forward_batch(self, batch: list[tuple[AnyEvent, OnCommit | None]]) -> None:
        acks = [on_commit for _, on_commit in batch if on_commit is not None]
        events = [event for event, _ in batch]
        self._run_hooks(events)
        per_sink = self._per_sink(events)
        for sink, routed in per_sink.items():
            await self._forward(sink, routed)
        if acks:
            self._acknowledge_batch(acks, per_sink)

    def _run_hooks(self, events: Iterable[AnyEvent]) -> None:
        for event in events:
            for hook in self.on_event:
                hook(event)

    def _per_sink(self, events: Iterable[AnyEvent]) -> dict[str, list[AnyEvent]]:
        per_sink: dict[str, list[AnyEvent]] = {}
        for event in events:
            for sink in self._routes.get(event.source, ()):
                if event.kind in self._kinds.get(sink, ()):
                    per_sink.setdefault(sink, []).append(event)
        return per_sink

    def _acknowledge_batch(self, acks: list[OnCommit], per_sink: Mapping[str, object]) -> None:
        targets = (self._targets.get(sink) for sink in per_sink)
        commits = [target.committed() for target in targets if target is not None]
        self._acked = _acknowledge(acks, commits, after=self._acked)

    async def _forward(self, sink: str, events: list[AnyEvent]) -> None:
        target = self._targets.get(sink)
        if target is None:
            _dropped(sink, events)
            return
        await target.put_many(events)

    async def close(self) -> None:
        await self.queue.put(None)


def _dropped(sink: str, events: Iterable[AnyEvent]) -> None:
    for event in events:
        log.warning("event %s for sink %s dropped: sink not running", event.id, sink)


def _acknowledge(
    acks: Iterable[OnCommit],
    commits: Sequence[asyncio.Future[None]],
    *,
    after: asyncio.Future[object] | None,
) -> asyncio.Future[object] | None:
    """Call ``acks`` once every sink committed and the batch before was acknowledged (in
    order: now, if neither is pending); return what the next batch waits for."""
    waits = [f for f in (after, *commits) if f is not None and not f.done()]
    if not waits:
        for ack in acks:
            ack()
        return None
    acks = list(acks)
    acknowledged: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    def done(all_committed: asyncio.Future[list[object]]) -> None:
        if not all_committed.cancelled() and all_committed.exception() is None:
            for ack in acks:
                ack()
            acknowledged.set_result(None)

    asyncio.gather(*waits).add_done_callback(done)
    return acknowledged
