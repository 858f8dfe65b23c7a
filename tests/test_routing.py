"""Routing from YAML: each source names its sinks (default all), each sink picks its kinds;
driven through the daemon's router and outbox workers into a real broker and real files."""

from __future__ import annotations

import asyncio
import json
import uuid

from listend.daemon.config.loader import parse_config
from listend.daemon.delivery.worker import SinkWorker
from listend.daemon.plugin.manager import load_plugins
from listend.daemon.service.daemon import Daemon
from tests.support.events import transcript, utterance_end
from tests.support.mqtt import Subscriber
from tests.support.waiting import async_test


@async_test
async def test_sources_reach_their_sinks_with_the_kinds_each_asked_for(mosquitto_port, tmp_path):
    device = f"d{uuid.uuid4().hex[:8]}"
    wav = tmp_path / "x.raw"
    wav.write_bytes(b"\0\0" * 160)
    text = f"""
device: {device}
state_dir: {tmp_path / "state"}
sources:
  hall: {{type: file, path: {wav}, format: raw}}                 # every sink
  door: {{type: file, path: {wav}, format: raw, sinks: [broker]}}
sinks:
  broker:
    type: mqtt
    host: 127.0.0.1
    port: {mosquitto_port}
    receive: [final, utterance_end]
  disk:
    type: file
    path: "{{source}}.jsonl"
"""
    config = parse_config(text, "routing.yaml", load_plugins())
    daemon = Daemon(config, load_plugins())
    workers = {name: SinkWorker(daemon.make_sink(config, name)) for name in config.sinks}
    assert workers["broker"].sink.context.sources == ("hall", "door")
    assert workers["disk"].sink.context.sources == ("hall",)
    for name, worker in workers.items():
        daemon.router.attach(name, worker)
    sub = await asyncio.to_thread(Subscriber, mosquitto_port, [f"listend/{device}/#"])
    tasks = [asyncio.create_task(w.run()) for w in workers.values()]
    router = asyncio.create_task(daemon.router.run())
    events = []
    for seq in range(0, 12, 3):
        for source in ("hall", "door"):
            events += [
                transcript(source, seq, f"{source} {seq}", device=device, is_final=False),
                transcript(source, seq + 1, f"{source} {seq + 1}", device=device),
                utterance_end(source, seq + 2, device=device),
            ]
    for event in events:
        await daemon.router.publish(event)
    await daemon.router.close()
    await router
    for worker in workers.values():
        worker.close()
    await asyncio.gather(*tasks)
    await asyncio.to_thread(sub.wait_for, lambda m: len(m) >= 17, 20, "16 events + status")
    sub.close()

    for source in ("hall", "door"):
        base = f"listend/{device}/{source}/transcript"
        got = [m.json()["id"] for m in sub.messages if m.topic.startswith(base)]
        want = [e.id for e in events if e.source == source and e.kind != "interim"]
        assert got == want  # finals and utterance ends, in order; no interims
    lines = (tmp_path / "state" / "hall.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [
        e.id for e in events if e.source == "hall" and e.kind == "final"
    ]
    assert not (tmp_path / "state" / "door.jsonl").exists()
