"""One delivery worker per sink: events go through the sink's durable outbox, in order.

An event is removed from the outbox only after ``Sink.deliver`` returned for it (the sink's
confirmation: PUBACK, HTTP 2xx, file flushed) and its commit is on disk. Delivery does not
wait for the disk: a commit starts as soon as events arrive (see
:mod:`listend.daemon.delivery.commits`: batches form only while a commit is running) and the
sink already sends them meanwhile. An event not yet committed is exposed to a crash for that
long, as it is while it waits in the router's queue; once committed it survives SIGKILL and
power loss, and until confirmed it is retried with the shared
:class:`~listend.daemon.retry.backoff.Backoff`, across restarts if need be. Consumers may see an
event twice (at-least-once) and dedupe on its ``id``.

Interim results are never stored: they are superseded within a second, so each source's
latest one waits in memory (latest wins) and is delivered best-effort, only once the outbox
holds nothing older from that source, so per-source order holds for every kind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Any

from listend.daemon.delivery.dead_letter import (
    dead_letter_events,
    dead_letter_path,
    dead_letter_rows,
)
from listend.daemon.delivery.gaps import Gaps
from listend.daemon.delivery.intake import Intake
from listend.daemon.delivery.outbox import Outbox, OutboxFullError, Queued, Rejected
from listend.daemon.delivery.refusal import Refusal
from listend.daemon.events import AnyEvent, TranscriptEvent
from listend.daemon.plugin.sink import DeliveryError, PermanentDeliveryError, Sink
from listend.daemon.retry.backoff import Backoff
from listend.daemon.retry.outage import Outage

__all__ = ["SinkWorker", "dead_letter_path", "open_workers", "outbox_path"]

log = logging.getLogger(__name__)


def outbox_path(state_dir: Path, sink: str) -> Path:
    return state_dir / "outbox" / f"{sink}.sqlite3"


class SinkWorker(Intake):
    """Feeds one sink from its outbox; the router calls ``put_many``/``take`` (the
    :class:`~listend.daemon.delivery.intake.Intake`), ``run`` is its task."""

    def __init__(self, sink: Sink, backoff: Backoff | None = None) -> None:
        state_dir = sink.context.state_dir
        outbox = Outbox(
            outbox_path(state_dir, sink.name), max_events=sink.outbox_options.max_events
        )
        self.refusal = Refusal(sink.name, self._probe_space)  # the outbox cannot be written
        self.gaps = Gaps(sink.name, sink.outbox_options.max_events)
        super().__init__(sink, outbox, self.refusal, self.gaps)
        self.backoff = backoff or Backoff()
        self.dead_letter = dead_letter_path(state_dir, sink.name)
        self._deadline: float | None = None
        self._timeout: asyncio.Timeout | None = None
        self._opening = asyncio.Lock()
        self.outage = Outage(  # any delivery ends it, as it resets the backoff
            f"sink {sink.name}", recovered="delivering again", logger=log
        )
        self.delivered = 0
        self.failed = 0
        self.dead_lettered = 0
        self.interims_dropped = 0

    def problem(self) -> str | None:
        """Why this sink is not up: its outbox (a full disk), the sink's own account (broker
        refused, ...), or failing deliveries; None when it is."""
        if (problem := self.refusal.describe()) is not None:
            return problem
        if (problem := self.sink.problem()) is not None:
            return problem
        return self.outage.last_error if self.outage.down else None

    @property
    def dropped(self) -> int:
        """Events the full outbox dropped (``policy: drop_oldest``)."""
        return self.gaps.dropped

    def depth(self) -> int:
        """Events waiting for this sink (stored and interim)."""
        return len(self.outbox) + len(self._interims)

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued for at most ``timeout`` seconds (default: the sink's
        ``outbox.drain_timeout``), then return from :meth:`run`; the rest stays on disk."""
        self._closing = True
        wait = self.options.drain_timeout if timeout is None else timeout
        self._deadline = asyncio.get_running_loop().time() + wait
        if self._timeout is not None:
            self._timeout.reschedule(self._deadline)
        self._wakeup.set()

    # -- the task ----------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the outbox and start the sink (idempotent); errors here are the user's to fix,
        so the daemon calls it before starting its tasks."""
        async with self._opening:
            try:
                await self.outbox.open()
            except OutboxFullError as exc:  # a new outbox on a full disk: refuse, probe
                self.refusal.refuse(0, exc)
            if not self._started:
                try:
                    await self.sink.start()
                except BaseException:
                    await self.outbox.close()
                    raise
                self._started = True

    async def abort(self) -> None:
        """Release the sink and the outbox without delivering (startup failed elsewhere)."""
        try:
            if self._started:
                await self.sink.stop()
        finally:
            await self.commits.finish()
            await self.refusal.close()
            await self.outbox.close()

    async def _probe_space(self) -> None:
        """OutboxFullError unless the outbox takes writes (opening it, if that failed)."""
        async with self._opening:  # not while open() tries the same
            if self.outbox.is_open:
                await self.outbox.probe()
            else:
                await self.outbox.open()
        self._wakeup.set()  # a backlog it found, or what waited

    async def run(self) -> None:
        await self.open()
        deadline = asyncio.timeout_at(self._deadline)  # an absolute time (close() came first)
        self._timeout = deadline
        try:
            async with deadline:
                await self._loop()
        except TimeoutError:
            if not deadline.expired():
                raise
            log.warning(
                "sink %s: stop deadline reached; %d event(s) stay in %s for the next start",
                self.sink.name,
                len(self.outbox),
                self.outbox.path,
            )
        finally:
            self._timeout = None
            if self._sending is not None:  # cancelled before it was awaited
                self._sending[1].close()
                self._sending = None
            self.gaps.report(force=True)
            try:
                await self.sink.stop()
            finally:
                await self.commits.finish()
                await self.refusal.close()
                await self.outbox.close()

    async def _loop(self) -> None:
        while True:
            self._wakeup.clear()  # before looking, so a put() during the look is not missed
            if (sending := self._sending) is not None:
                self._sending = None
                await self._deliver_stored(*sending)
                continue
            if ready := self._ready_interims():
                await self._deliver_interims(ready)
                continue
            try:
                batch = await self.outbox.peek(self.sink.max_batch) if len(self.outbox) else []
            except OutboxFullError as exc:  # reads fail too (an I/O error): as if full
                self.refusal.refuse(0, exc)
                if self._closing:
                    return  # what is stored stays for the next start
                await self._wakeup.wait()  # the probe wakes us once it reads and writes
                continue
            if rejected := self.outbox.rejected():
                await self._dead_letter_rows(rejected)
            if batch:
                await self._deliver_stored(batch)
            elif self._closing:
                return
            else:
                self._idle = True
                try:
                    await self._wakeup.wait()
                finally:
                    self._idle = False

    def _ready_interims(self) -> list[TranscriptEvent]:
        """Interims whose source has nothing older waiting in the outbox."""
        ready = [e for s, e in self._interims.items() if not self.outbox.pending(s)]
        ready = ready[: self.sink.max_batch]
        for event in ready:
            del self._interims[event.source]
        return ready

    async def _deliver_interims(self, events: list[TranscriptEvent]) -> None:
        try:
            await self.sink.deliver(events)
        except (DeliveryError, PermanentDeliveryError) as exc:
            self.interims_dropped += len(events)
            log.debug("sink %s: interim result(s) not delivered: %s", self.sink.name, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.interims_dropped += len(events)
            log.exception("sink %s: deliver() raised unexpectedly", self.sink.name)

    async def _deliver_stored(
        self, batch: list[Queued], sending: Coroutine[Any, Any, None] | None = None
    ) -> None:
        """Deliver ``batch`` (or finish its delivery: ``sending``, from ``send_now``)."""
        self._inflight_through = batch[-1].pos  # drop_oldest must not drop these
        try:
            if await self._attempt([item.event for item in batch], sending):
                await self.outbox.remove(batch)
                self._space.set()
        finally:
            self._inflight_through = 0

    async def _attempt(
        self, events: list[AnyEvent], sending: Coroutine[Any, Any, None] | None = None
    ) -> bool:
        """One delivery; True when the events are done with (confirmed or dead-lettered)."""
        try:
            await (self.sink.deliver(events) if sending is None else sending)
        except DeliveryError as exc:
            await self._retry_later(exc, exc.retry_after)
            return False
        except PermanentDeliveryError as exc:
            await self._dead_letter(events, exc)
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a sink bug must not lose events: keep them, retry, say so
            log.exception("sink %s: deliver() raised unexpectedly", self.sink.name)
            await self._retry_later(exc, None)
            return False
        self.outage.up()
        self.delivered += len(events)
        self.backoff.reset()
        self.gaps.report()
        return True

    async def _retry_later(self, exc: Exception, retry_after: float | None) -> None:
        self.failed += 1
        self.outage.failed(f"delivery failed, {len(self.outbox)} event(s) kept for retry: {exc}")
        await self.backoff.wait(at_least=retry_after or 0.0)

    async def _dead_letter(self, events: Sequence[AnyEvent], exc: PermanentDeliveryError) -> None:
        """Write undeliverable events to the sink's dead-letter file (fsynced), then forget."""
        await dead_letter_events(self.dead_letter, self.sink.name, events, str(exc))
        self.dead_lettered += len(events)

    async def _dead_letter_rows(self, rows: Sequence[Rejected]) -> None:
        """Outbox rows that are no event (invalid JSON, unknown version): to the dead letters,
        then out of the outbox, so the rest of the queue moves on."""
        await dead_letter_rows(self.dead_letter, self.sink.name, rows)
        await self.outbox.discard_rejected(rows)
        self.dead_lettered += len(rows)


async def open_workers(workers: Iterable[SinkWorker]) -> None:
    """Open every worker's outbox and sink, or none: on an error, close those already open."""
    opened: list[SinkWorker] = []
    try:
        for worker in workers:
            await worker.open()
            opened.append(worker)
    except BaseException:
        for worker in opened:
            await worker.abort()
        raise
