"""A broker down for 30 s while two sources keep producing finals: nothing is lost, per-source
order holds, and a duplicate (if any) carries the same id. Real time, hence ``slow``."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict

import pytest

from listend.daemon.delivery.router import Router
from listend.daemon.delivery.worker import SinkWorker
from listend.daemon.plugin.source import PluginContext
from listend.daemon.retry.backoff import Backoff
from listend.plugins.mqtt_sink import MqttSink, MqttSinkConfig
from tests.support.events import transcript
from tests.support.mqtt import Mosquitto, Subscriber
from tests.support.net import free_port
from tests.support.waiting import async_test

OUTAGE_SECONDS = 30.0
SOURCES = ("hall", "door")


@pytest.mark.slow
@pytest.mark.timeout(240)
@async_test
async def test_broker_down_for_30_seconds_loses_nothing(tmp_path):
    port = free_port()
    broker = Mosquitto(port, tmp_path, persistence=True)  # keeps the subscriber's session
    await asyncio.to_thread(broker.start)
    device = f"d{uuid.uuid4().hex[:8]}"
    sub = await asyncio.to_thread(
        Subscriber,
        port,
        [f"listend/{device}/+/transcript"],
        client_id=f"watcher-{device}",
        persistent=True,
    )
    config = MqttSinkConfig(
        type="mqtt", host="127.0.0.1", port=port, reconnect_max_delay=1.0, timeout=5.0
    )
    sink = MqttSink("broker", config, PluginContext(device, tmp_path / "state", SOURCES))
    worker = SinkWorker(sink, Backoff(initial=0.1, cap=1.0))
    router = Router({s: ["broker"] for s in SOURCES}, {"broker": ["final"]})
    router.attach("broker", worker)
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(router.run())]
    produced: dict[str, list[str]] = defaultdict(list)
    seq = 0

    async def produce_for(seconds: float) -> None:
        nonlocal seq
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for source in SOURCES:
                event = transcript(source, seq, f"{source} says {seq}", device=device)
                produced[source].append(event.id)
                await router.publish(event)
            seq += 1
            await asyncio.sleep(0.25)

    try:
        await produce_for(2.0)
        await asyncio.to_thread(broker.stop)
        await produce_for(OUTAGE_SECONDS)
        assert len(worker.outbox) > 0  # held on disk during the outage
        await asyncio.to_thread(broker.start)
        await produce_for(2.0)
        total = sum(len(ids) for ids in produced.values())

        def all_arrived(messages) -> bool:
            return len({json.loads(m.payload)["id"] for m in messages}) >= total

        await asyncio.to_thread(sub.wait_for, all_arrived, 90, f"all {total} finals")
    finally:
        await router.close()
        await tasks[1]
        worker.close()
        await tasks[0]
        sub.close()
        broker.stop()

    by_id: dict[str, bytes] = {}
    for source in SOURCES:
        received = sub.on(f"listend/{device}/{source}/transcript")
        ids = [json.loads(m.payload)["id"] for m in received]
        first_seen = list(dict.fromkeys(ids))
        assert first_seen == produced[source], f"{source}: lost or reordered finals"
        for message, event_id in zip(received, ids, strict=True):
            # a duplicate is the same event: same id, same bytes
            assert by_id.setdefault(event_id, message.payload) == message.payload
    assert worker.dropped == 0
