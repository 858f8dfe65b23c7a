"""The mqtt sink against a real mosquitto: topics, payloads, status/LWT, the outbox across a
killed daemon, Home Assistant discovery, MQTT 5 over TLS."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid

import pytest

from listend.daemon.delivery.worker import SinkWorker
from listend.daemon.events import to_json
from listend.daemon.plugin.source import PluginContext
from listend.daemon.retry.backoff import Backoff
from listend.plugins.mqtt_sink import MqttSink, MqttSinkConfig
from tests.support.cli import DaemonProcess
from tests.support.events import transcript, utterance_end
from tests.support.mqtt import Mosquitto, Subscriber
from tests.support.net import free_port
from tests.support.outbox import outbox_ids, seed_outbox
from tests.support.waiting import async_test, wait_until_async


def unique_device() -> str:
    return f"d{uuid.uuid4().hex[:10]}"


def make_worker(tmp_path, device: str, sources=("hall",), **options) -> SinkWorker:
    config = MqttSinkConfig.model_validate({"type": "mqtt", "host": "127.0.0.1", **options})
    sink = MqttSink("broker", config, PluginContext(device, tmp_path / "state", tuple(sources)))
    return SinkWorker(sink, Backoff(initial=0.05, cap=0.5))


async def wait_in_thread(subscriber: Subscriber, predicate, what: str, timeout: float = 20):
    await asyncio.to_thread(subscriber.wait_for, predicate, timeout, what)


@async_test
async def test_events_arrive_on_the_documented_topics(mosquitto_port, tmp_path):
    device = unique_device()
    sub = Subscriber(mosquitto_port, [f"listend/{device}/#"])
    worker = make_worker(
        tmp_path,
        device,
        port=mosquitto_port,
        receive=["final", "interim", "utterance_end", "speech_started"],
    )
    task = asyncio.create_task(worker.run())
    try:
        final = transcript("hall", 1, "turn on the lights", device=device)
        base = f"listend/{device}/hall/transcript"
        await worker.put(transcript("hall", 0, "turn on", device=device, is_final=False))
        # a final supersedes an interim not yet sent: let this one go out first
        await wait_in_thread(sub, lambda m: any(x.topic == f"{base}/interim" for x in m), "1")
        await worker.put(final)
        await worker.put(utterance_end("hall", 2, device=device))
        await wait_in_thread(sub, lambda m: any(x.topic == f"{base}/utterance_end" for x in m), "3")
        [got] = sub.on(base)
        assert got.payload.decode() == to_json(final)
        assert got.json()["id"] == f"{device}/hall/{final.epoch}/1"
        assert got.qos == 1
        assert not got.retain
        assert sub.on(f"{base}/interim")[0].json()["is_final"] is False
        [status] = sub.on(f"listend/{device}/status")
        assert status.payload == b"online"  # retained: see the Last Will test
    finally:
        worker.close()
        await task
    await wait_in_thread(
        sub, lambda m: any(x.payload == b"offline" for x in m), "offline after a clean stop"
    )
    sub.close()


def write_daemon_config(path, *, device: str, state_dir, port: int, extra: str = "") -> None:
    path.write_text(
        f"device: {device}\n"
        f"state_dir: {state_dir}\n"
        "sources: {idle: {type: file, path: config/samples/hello.wav, enabled: false}}\n"
        "sinks:\n"
        "  broker:\n"
        "    type: mqtt\n"
        "    host: 127.0.0.1\n"
        f"    port: {port}\n"
        "    reconnect_max_delay: 0.5\n" + extra
    )


def test_status_is_retained_online_and_the_will_says_offline_on_sigkill(mosquitto_port, tmp_path):
    device = unique_device()
    config = tmp_path / "listend.yaml"
    write_daemon_config(config, device=device, state_dir=tmp_path / "state", port=mosquitto_port)
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    status = f"listend/{device}/status"
    try:
        daemon.wait_log("connected to MQTT broker")
        late = Subscriber(mosquitto_port, [status])  # joins after: sees the retained value
        late.wait_for(lambda m: any(x.payload == b"online" and x.retain for x in m), 10, "online")
    finally:
        daemon.kill()
    late.wait_for(lambda m: any(x.payload == b"offline" for x in m), 20, "the Last Will")
    late.close()
    after = Subscriber(mosquitto_port, [status])
    after.wait_for(lambda m: [x.payload for x in m] == [b"offline"], 10, "retained offline")
    after.close()


def test_undelivered_events_survive_sigkill_and_go_out_after_restart(mosquitto_port, tmp_path):
    device = unique_device()
    state = tmp_path / "state"
    events = [
        transcript(src, seq, f"{src} {seq}", device=device)
        for seq in range(5)
        for src in ("a", "b")
    ]
    asyncio.run(seed_outbox(state, "broker", events))

    # 1. a daemon that cannot reach its broker holds them, and is killed
    config = tmp_path / "down.yaml"
    write_daemon_config(config, device=device, state_dir=state, port=free_port())
    daemon = DaemonProcess(config, tmp_path / "down.log")
    try:
        daemon.wait_log("10 undelivered event(s) from a previous run")
        daemon.wait_log("retrying")
    finally:
        daemon.kill()
    assert asyncio.run(outbox_ids(state, "broker")) == [e.id for e in events]

    # 2. restarted with the broker there: delivered in order, then forgotten
    sub = Subscriber(mosquitto_port, [f"listend/{device}/+/transcript"])
    config = tmp_path / "up.yaml"
    write_daemon_config(config, device=device, state_dir=state, port=mosquitto_port)
    daemon = DaemonProcess(config, tmp_path / "up.log")
    try:
        sub.wait_for(lambda m: len(m) >= 10, 30, "the 10 stored events")
    finally:
        code = daemon.terminate()
    assert code == 0, daemon.log()
    for src in ("a", "b"):
        got = [x.json()["id"] for x in sub.on(f"listend/{device}/{src}/transcript")]
        assert got == [e.id for e in events if e.source == src]
    sub.close()
    assert asyncio.run(outbox_ids(state, "broker")) == []


@async_test
async def test_events_wait_in_the_outbox_until_a_broker_appears(tmp_path):
    device = unique_device()
    port = free_port()
    worker = make_worker(tmp_path, device, port=port, reconnect_max_delay=0.3)
    task = asyncio.create_task(worker.run())
    broker = Mosquitto(port, tmp_path)
    try:
        for seq in range(3):
            await worker.put(transcript("hall", seq, f"t{seq}", device=device))
        await asyncio.sleep(0.5)
        assert worker.delivered == 0
        assert not worker.sink.reachable()
        await asyncio.to_thread(broker.start)
        sub = await asyncio.to_thread(Subscriber, port, [f"listend/{device}/#"])
        await wait_until_async(lambda: worker.delivered >= 3, 20, "three deliveries")
        assert worker.sink.reachable()
        sub.close()
    finally:
        worker.close()
        await task
        broker.stop()


@async_test
async def test_home_assistant_discovery_is_retained_and_resent_on_birth(mosquitto_port, tmp_path):
    device = unique_device()
    prefix = f"ha{uuid.uuid4().hex[:8]}"
    worker = make_worker(
        tmp_path,
        device,
        sources=("hall", "door"),
        port=mosquitto_port,
        homeassistant={"prefix": prefix},
    )
    task = asyncio.create_task(worker.run())
    config_topic = f"{prefix}/device/listend_{device}/config"
    try:
        await wait_until_async(worker.sink.reachable, 20, "the broker connection")
        sub = await asyncio.to_thread(Subscriber, mosquitto_port, [f"{prefix}/#"])
        await wait_in_thread(sub, lambda m: any(x.topic == config_topic for x in m), "discovery")
        [first] = sub.on(config_topic)
        assert first.retain
        payload = first.json()
        assert set(payload["components"]) == {
            "hall_transcript",
            "hall_last_transcript",
            "door_transcript",
            "door_last_transcript",
        }
        sub.client.publish(f"{prefix}/status", "online", qos=0)  # Home Assistant restarted
        await wait_in_thread(sub, lambda m: sum(x.topic == config_topic for x in m) >= 2, "resend")
        # a source seen for the first time (e.g. after a reload) joins the device
        await worker.put(transcript("porch", 0, "hello", device=device))
        await wait_in_thread(
            sub,
            lambda m: any(
                x.topic == config_topic and "porch_transcript" in x.json()["components"] for x in m
            ),
            "porch discovered",
        )
        sub.close()
    finally:
        worker.close()
        await task
    # clean up the retained config for other tests on the shared broker
    cleaner = Subscriber(mosquitto_port, [])
    cleaner.client.publish(config_topic, b"", qos=1, retain=True).wait_for_publish(5)
    cleaner.close()


@async_test
async def test_per_entity_discovery_topics(mosquitto_port, tmp_path):
    device = unique_device()
    prefix = f"ha{uuid.uuid4().hex[:8]}"
    worker = make_worker(
        tmp_path, device, port=mosquitto_port, homeassistant={"prefix": prefix, "mode": "entity"}
    )
    sub = Subscriber(mosquitto_port, [f"{prefix}/#"])
    task = asyncio.create_task(worker.run())
    try:
        await wait_in_thread(sub, lambda m: len(m) >= 2, "two entity configs")
    finally:
        worker.close()
        await task
    topics = sorted(x.topic for x in sub.messages)
    assert topics == [
        f"{prefix}/event/listend_{device}/hall_transcript/config",
        f"{prefix}/sensor/listend_{device}/hall_last_transcript/config",
    ]
    for topic in topics:
        sub.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    sub.close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """A CA and a server certificate for 127.0.0.1, made with the openssl command."""
    d = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    )
    return d


@async_test
async def test_mqtt5_over_tls_with_a_private_ca(tmp_path, tls_files):
    plain, secure = free_port(), free_port()
    broker = Mosquitto(
        plain,
        tmp_path,
        extra=f"listener {secure} 127.0.0.1\n"
        f"cafile {tls_files / 'ca.crt'}\ncertfile {tls_files / 'server.crt'}\n"
        f"keyfile {tls_files / 'server.key'}\n",
    )
    await asyncio.to_thread(broker.start)
    device = unique_device()
    sub = await asyncio.to_thread(Subscriber, plain, [f"listend/{device}/#"])
    worker = make_worker(
        tmp_path, device, port=secure, protocol=5, tls={"ca_file": str(tls_files / "ca.crt")}
    )
    task = asyncio.create_task(worker.run())
    try:
        await worker.put(transcript("hall", 0, "over tls", device=device))
        await wait_in_thread(
            sub, lambda m: any(x.topic.endswith("/transcript") for x in m), "the final over TLS"
        )
        assert json.loads(sub.on(f"listend/{device}/hall/transcript")[0].payload)["text"] == (
            "over tls"
        )
    finally:
        worker.close()
        await task
        sub.close()
        broker.stop()
