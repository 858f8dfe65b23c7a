"""Fan events out from stream sessions to the sinks that asked for them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Protocol

from listend.daemon.events import AnyEvent, EventKind

log = logging.getLogger(__name__)

ROUTER_QUEUE_SIZE = 1024


class EventTarget(Protocol):
    """Anything that accepts events for one sink (its delivery worker)."""

    async def put(self, event: AnyEvent) -> None: ...


class Router:
    """Sessions ``publish`` into a bounded queue; one task moves events to sink workers.

    Per-source order is kept because one task forwards events in arrival order and each sink
    worker is FIFO.
    """

    def __init__(
        self, routes: Mapping[str, Sequence[str]], kinds: Mapping[str, Sequence[EventKind]]
    ) -> None:
        self._routes = {source: tuple(sinks) for source, sinks in routes.items()}
        self._kinds = {sink: frozenset(k) for sink, k in kinds.items()}
        self._targets: dict[str, EventTarget] = {}
        self.queue: asyncio.Queue[AnyEvent | None] = asyncio.Queue(ROUTER_QUEUE_SIZE)
        self.on_event: list[Callable[[AnyEvent], None]] = []
        self.forwarded = 0  # events fully handed on; the watchdog checks that it moves
        self._forwarding = asyncio.Lock()

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

    async def publish(self, event: AnyEvent) -> None:
        await self.queue.put(event)

    async def run(self) -> None:
        """Forward events until a ``None`` sentinel arrives (see :meth:`close`)."""
        while (event := await self.queue.get()) is not None:
            async with self._forwarding:
                await self._forward(event)
            self.forwarded += 1

    async def _forward(self, event: AnyEvent) -> None:
        for hook in self.on_event:
            hook(event)
        for sink in self._routes.get(event.source, ()):
            if event.kind not in self._kinds.get(sink, ()):
                continue
            target = self._targets.get(sink)
            if target is None:
                log.warning("event %s for sink %s dropped: sink not running", event.id, sink)
                continue
            await target.put(event)

    async def close(self) -> None:
        await self.queue.put(None)
