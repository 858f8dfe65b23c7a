"""One delivery worker per sink: takes events in order, retries with backoff until confirmed.

This is the in-memory version; the durable SQLite outbox replaces its queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from listend.daemon.backoff import Backoff
from listend.daemon.events import AnyEvent
from listend.daemon.sinks import DeliveryError, PermanentDeliveryError, Sink

log = logging.getLogger(__name__)


class SinkWorker:
    def __init__(self, sink: Sink, backoff: Backoff | None = None) -> None:
        self.sink = sink
        self.backoff = backoff or Backoff()
        self._pending: deque[AnyEvent] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self.delivered = 0
        self.failed = 0

    async def put(self, event: AnyEvent) -> None:
        self._pending.append(event)
        self._wakeup.set()

    def depth(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        """Deliver what is queued, then return from :meth:`run`."""
        self._closing = True
        self._wakeup.set()

    async def run(self) -> None:
        await self.sink.start()
        try:
            while True:
                if not self._pending:
                    if self._closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                batch = [
                    self._pending[i] for i in range(min(self.sink.max_batch, len(self._pending)))
                ]
                try:
                    await self.sink.deliver(batch)
                except DeliveryError as exc:
                    self.failed += 1
                    log.warning("sink %s: delivery failed, will retry: %s", self.sink.name, exc)
                    await self.backoff.wait(at_least=exc.retry_after or 0.0)
                    continue
                except PermanentDeliveryError as exc:
                    log.error("sink %s: dropped %d event(s): %s", self.sink.name, len(batch), exc)  # noqa: TRY400
                for _ in batch:
                    self._pending.popleft()
                self.delivered += len(batch)
                self.backoff.reset()
        finally:
            await self.sink.stop()
