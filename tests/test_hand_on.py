"""The short way from a session to a sink's socket: no task hop when nothing waits before an
event, and still no acknowledgement before the event is committed to the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any

from listend.daemon.delivery.router import Router
from listend.daemon.delivery.worker import SinkWorker
from listend.daemon.events import AnyEvent
from listend.daemon.plugin.sink import OutboxOptions, Sink, SinkConfig
from listend.daemon.plugin.source import AudioFormat, PluginContext
from listend.daemon.stream.capture import EventQueue
from listend.daemon.stream.replay import ReplayBuffer
from tests.support.events import transcript
from tests.support.waiting import async_test, wait_until_async


class SendingSink(Sink):
    """Starts a delivery in ``send_now`` (recorded at once); confirms once ``confirm`` is set."""

    type_name = "sending"
    max_batch = 10

    def __init__(self, state_dir, *, outbox: OutboxOptions | None = None) -> None:
        config = SinkConfig(type="sending", outbox=outbox or OutboxOptions())
        super().__init__("out", config, PluginContext("dev", state_dir))
        self.sent: list[str] = []  # written "to the socket", in order
        self.confirmed: list[str] = []
        self.confirm = asyncio.Event()

    def send_now(self, events: Sequence[AnyEvent]) -> Coroutine[Any, Any, None] | None:
        self.sent.extend(e.id for e in events)
        return self._acks(events)

    async def deliver(self, events: Sequence[AnyEvent]) -> None:
        self.sent.extend(e.id for e in events)
        await self._acks(events)

    async def _acks(self, events: Sequence[AnyEvent]) -> None:
        await self.confirm.wait()
        self.confirmed.extend(e.id for e in events)


async def started(tmp_path, **outbox: Any) -> tuple[Router, SinkWorker, SendingSink]:
    sink = SendingSink(tmp_path, outbox=OutboxOptions(**outbox))
    worker = SinkWorker(sink)
    router = Router({"hall": ["out"]}, {"out": ["final"]})
    router.attach("out", worker)
    await worker.open()
    return router, worker, sink


@async_test
async def test_a_final_reaches_the_sink_in_the_step_it_was_offered_and_is_acked_once_durable(
    tmp_path,
):
    router, worker, sink = await started(tmp_path)
    task = asyncio.create_task(worker.run())
    await wait_until_async(lambda: worker._idle, what="the worker waits for events")
    final = transcript("hall", 1, "lights on")
    written_at_ack: list[int] = []
    assert router.offer(final, lambda: written_at_ack.append(worker.commits.written))
    assert sink.sent == [final.id]  # no await in between: no task hop on the way
    assert written_at_ack == []  # the commit is still on its way to the disk
    await wait_until_async(lambda: written_at_ack, what="the acknowledgement")
    assert written_at_ack == [1]  # acknowledged once the commit returned, not before
    sink.confirm.set()
    await wait_until_async(lambda: worker.delivered == 1)
    worker.close()
    await task
    assert sink.sent == sink.confirmed == [final.id]  # delivered once


@async_test
async def test_a_busy_worker_keeps_the_order_and_delivers_the_rest_from_its_task(tmp_path):
    router, worker, sink = await started(tmp_path)
    task = asyncio.create_task(worker.run())
    await wait_until_async(lambda: worker._idle, what="the worker waits for events")
    events = [transcript("hall", seq, f"t{seq}") for seq in range(5)]
    for event in events:  # the first is sent at once; the rest wait for its confirmation
        assert router.offer(event)
    assert sink.sent == [events[0].id]
    sink.confirm.set()
    await wait_until_async(lambda: worker.delivered == 5)
    worker.close()
    await task
    assert sink.confirmed == [e.id for e in events]


@async_test
async def test_the_router_leaves_to_its_task_what_a_sink_cannot_take_without_waiting(tmp_path):
    router, worker, sink = await started(tmp_path, policy="block")
    assert not router.offer(transcript("hall", 1, "x"))  # block: room is checked by awaiting
    assert router.queue.empty()  # nothing was done: publish() queues it
    assert len(worker.outbox) == 0
    await worker.abort()
    router, worker, sink = await started(tmp_path / "paused")
    async with router.paused():  # a reload swaps workers: everything waits in the queue
        assert not router.offer(transcript("hall", 2, "y"))
    await worker.abort()
    assert sink.sent == []


@async_test
async def test_the_session_queue_offers_only_when_nothing_waits_before(tmp_path):
    router, worker, _sink = await started(tmp_path)
    buffer = ReplayBuffer(AudioFormat(1000), max_seconds=10.0)
    acked: list[int] = []
    queue = EventQueue("hall", buffer, router.publisher, acked.append)
    await queue.emit(transcript("hall", 1, "a"))  # handed on: nothing for the publisher task
    assert queue._queue.empty()
    assert len(worker.outbox) == 1
    async with router.paused():  # a reload holds the router: the event waits in the queue
        await queue.emit(transcript("hall", 2, "b"))
        await queue.emit(transcript("hall", 3, "c"))  # behind the one that waits: queued too
        assert queue._queue.qsize() == 2
    publisher = asyncio.create_task(queue.run())
    await wait_until_async(lambda: len(worker.outbox) == 3)
    await queue.close()
    await publisher
    await worker.abort()
