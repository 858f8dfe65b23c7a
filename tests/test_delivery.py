"""The outbox-backed delivery worker, driven through a sink written for the test."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence

from listend.daemon.delivery.worker import SinkWorker, dead_letter_path
from listend.daemon.events import AnyEvent
from listend.daemon.plugin.sink import (
    DeliveryError,
    OutboxOptions,
    PermanentDeliveryError,
    Sink,
    SinkConfig,
)
from listend.daemon.plugin.source import PluginContext
from listend.daemon.retry.backoff import Backoff
from tests.support.events import transcript, utterance_end
from tests.support.outbox import outbox_ids
from tests.support.waiting import async_test, wait_until_async


class ScriptedSink(Sink):
    """Records confirmed batches; ``outcomes`` are raised by successive deliveries."""

    type_name = "scripted"
    max_batch = 10

    def __init__(self, state_dir, *, outbox: OutboxOptions | None = None, outcomes=()):
        config = SinkConfig(type="scripted", outbox=outbox or OutboxOptions())
        super().__init__("out", config, PluginContext("dev", state_dir))
        self.outcomes = list(outcomes)
        self.batches: list[list[str]] = []
        self.attempts = 0
        self.gate: asyncio.Event | None = None
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def deliver(self, events: Sequence[AnyEvent]) -> None:
        self.attempts += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.outcomes:
            outcome = self.outcomes.pop(0)
            if outcome is not None:
                raise outcome
        self.batches.append([e.id for e in events])

    @property
    def delivered_ids(self) -> list[str]:
        return [i for batch in self.batches for i in batch]


def fast_backoff() -> Backoff:
    return Backoff(initial=0.01, cap=0.05)


@async_test
async def test_retries_until_confirmed_then_forgets(tmp_path):
    sink = ScriptedSink(tmp_path, outcomes=[DeliveryError("down"), DeliveryError("still down")])
    worker = SinkWorker(sink, fast_backoff())
    task = asyncio.create_task(worker.run())
    events = [transcript("a", seq, f"t{seq}") for seq in range(3)]
    for event in events:
        await worker.put(event)
    await wait_until_async(lambda: worker.delivered == 3)
    worker.close()
    await task
    assert sink.delivered_ids == [e.id for e in events]
    assert worker.failed == 2
    assert sink.started
    assert sink.stopped
    assert await outbox_ids(tmp_path, "out") == []


@async_test
async def test_retry_after_is_honoured(tmp_path):
    sink = ScriptedSink(tmp_path, outcomes=[DeliveryError("busy", retry_after=0.3)])
    slept: list[float] = []

    async def record_sleep(delay: float) -> None:
        slept.append(delay)

    worker = SinkWorker(sink, Backoff(initial=0.01, cap=0.05, sleep=record_sleep))
    task = asyncio.create_task(worker.run())
    await worker.put(transcript("a", 0, "x"))
    await wait_until_async(lambda: worker.delivered == 1)
    worker.close()
    await task
    assert slept == [0.3]


@async_test
async def test_rejected_events_go_to_the_dead_letter_file(tmp_path, caplog):
    sink = ScriptedSink(tmp_path, outcomes=[PermanentDeliveryError("HTTP 400: bad")])
    worker = SinkWorker(sink, fast_backoff())
    task = asyncio.create_task(worker.run())
    await worker.put(transcript("a", 0, "rejected"))
    await wait_until_async(lambda: worker.dead_lettered == 1)
    await worker.put(transcript("a", 1, "accepted"))
    await wait_until_async(lambda: worker.delivered == 1)
    worker.close()
    await task
    lines = dead_letter_path(tmp_path, "out").read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["error"] == "HTTP 400: bad"
    assert record["sink"] == "out"
    assert record["event"]["text"] == "rejected"
    assert sink.delivered_ids == [transcript("a", 1, "").id]
    assert "rejected and written to" in caplog.text
    assert await outbox_ids(tmp_path, "out") == []


@async_test
async def test_interims_are_latest_wins_and_keep_per_source_order(tmp_path):
    sink = ScriptedSink(tmp_path)
    sink.gate = asyncio.Event()  # hold deliveries until everything is queued
    worker = SinkWorker(sink, fast_backoff())
    task = asyncio.create_task(worker.run())
    await worker.put(transcript("a", 0, "first final"))
    await wait_until_async(lambda: sink.attempts == 1)  # "a"/0 is in flight
    await worker.put(transcript("a", 1, "int one", is_final=False))
    await worker.put(transcript("a", 2, "int two", is_final=False))  # replaces "int one"
    await worker.put(transcript("b", 0, "b interim", is_final=False))
    await worker.put(transcript("b", 1, "b final"))  # supersedes b's interim
    await worker.put(transcript("b", 2, "b later", is_final=False))
    assert len(worker.outbox) == 2  # interims are never stored
    assert worker.depth() == 4
    sink.gate.set()
    await wait_until_async(lambda: worker.depth() == 0)
    worker.close()
    await task
    order = sink.delivered_ids
    a = [i for i in order if "/a/" in i]
    b = [i for i in order if "/b/" in i]
    assert a == [transcript("a", 0, "").id, transcript("a", 2, "").id]
    assert b == [transcript("b", 1, "").id, transcript("b", 2, "").id]


@async_test
async def test_drop_oldest_counts_and_logs_the_gap(tmp_path, caplog):
    sink = ScriptedSink(tmp_path, outbox=OutboxOptions(max_events=3))
    sink.gate = asyncio.Event()
    worker = SinkWorker(sink, fast_backoff())
    task = asyncio.create_task(worker.run())
    await worker.put(transcript("a", 0, "x"))
    await wait_until_async(lambda: sink.attempts == 1)
    with caplog.at_level(logging.WARNING):
        for seq in range(1, 6):
            await worker.put(transcript("a", seq, "x"))
    assert worker.dropped == 3
    assert len(worker.outbox) == 3
    sink.gate.set()
    await wait_until_async(lambda: len(worker.outbox) == 0)
    worker.close()
    await task
    # the batch in flight (0) was kept; 1..3 were dropped for 4 and 5
    assert sink.delivered_ids == [transcript("a", s, "").id for s in (0, 4, 5)]
    assert "consumers will see a gap" in caplog.text
    assert transcript("a", 1, "").id in caplog.text


@async_test
async def test_block_policy_waits_for_room(tmp_path):
    sink = ScriptedSink(tmp_path, outbox=OutboxOptions(max_events=2, policy="block"))
    sink.gate = asyncio.Event()
    worker = SinkWorker(sink, fast_backoff())
    task = asyncio.create_task(worker.run())
    await worker.put(transcript("a", 0, "x"))
    await worker.put(transcript("a", 1, "x"))
    third = asyncio.create_task(worker.put(transcript("a", 2, "x")))
    await asyncio.sleep(0.2)
    assert not third.done()
    sink.gate.set()
    await third
    await wait_until_async(lambda: worker.delivered == 3)
    worker.close()
    await task
    assert worker.dropped == 0


@async_test
async def test_close_stops_at_the_deadline_and_keeps_the_rest(tmp_path, caplog):
    sink = ScriptedSink(tmp_path)
    sink.gate = asyncio.Event()  # never confirms
    worker = SinkWorker(sink, fast_backoff())
    task = asyncio.create_task(worker.run())
    for seq in range(3):
        await worker.put(transcript("a", seq, "x"))
    worker.close(timeout=0.3)
    await asyncio.wait_for(task, 10)
    assert sink.stopped
    assert "stay in" in caplog.text
    assert await outbox_ids(tmp_path, "out") == [transcript("a", s, "").id for s in range(3)]

    # the next start delivers them
    again = ScriptedSink(tmp_path)
    worker = SinkWorker(again, fast_backoff())
    task = asyncio.create_task(worker.run())
    await wait_until_async(lambda: worker.delivered == 3)
    worker.close()
    await task
    assert again.delivered_ids == [transcript("a", s, "").id for s in range(3)]


@async_test
async def test_a_sink_bug_keeps_the_events(tmp_path, caplog):
    sink = ScriptedSink(tmp_path, outcomes=[RuntimeError("bug")])
    worker = SinkWorker(sink, fast_backoff())
    task = asyncio.create_task(worker.run())
    await worker.put(utterance_end("a", 0))
    await wait_until_async(lambda: worker.delivered == 1)
    worker.close()
    await task
    assert "deliver() raised unexpectedly" in caplog.text
    assert worker.failed == 1
