"""Home Assistant control and diagnostics over MQTT: discovery payloads checked (templates
rendered with Jinja as Home Assistant does), then the switch and diagnostics end to end with
a real daemon, mosquitto and the Deepgram test server."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from pathlib import Path

from listend.daemon.config.loader import load_config
from listend.daemon.events import to_json
from listend.daemon.plugin.control import StreamStatus
from listend.daemon.plugin.manager import load_plugins
from listend.daemon.plugin.source import PluginContext
from listend.daemon.service.daemon import Daemon
from listend.plugins.captions_sink import CaptionsSink, CaptionsSinkConfig
from listend.plugins.ha_controls import diagnostics_payload
from listend.plugins.mqtt_sink import MqttSink, MqttSinkConfig
from listend.testing import DeepgramTestServer, Script
from tests.support.events import transcript
from tests.support.homeassistant import COMMON, DEVICE_KEYS, ID, SENSOR_KEYS, render
from tests.support.mqtt import Subscriber
from tests.support.waiting import async_test, wait_until_async

SWITCH_KEYS = COMMON | {
    "command_topic",
    "state_topic",
    "payload_on",
    "payload_off",
    "state_on",
    "state_off",
    "optimistic",
    "retain",
    "value_template",
    "device_class",
}
BINARY_SENSOR_KEYS = COMMON | {
    "state_topic",
    "value_template",
    "device_class",
    "payload_on",
    "payload_off",
    "expire_after",
    "force_update",
    "off_delay",
}
STATUS = StreamStatus(
    connected=True,
    engine="deepgram",
    last_final_age=4.4399999999999995,
    seconds_streamed_today=812.0320000001,
    paused=False,
)


class StaticControl:
    """A DaemonControl with fixed answers, for the pure discovery payloads."""

    def sources(self):
        return ["hall"]

    def sinks(self):
        return ["broker", "archive"]

    def stream_status(self, source):
        return STATUS if source == "hall" else None

    def set_paused(self, source, paused):
        return source == "hall"

    def outbox_depth(self, sink):
        return 3

    def page_url(self):
        return "http://kiosk-1:8080/"


def test_switch_and_diagnostics_discovery_render_as_home_assistant_reads_them():
    config = MqttSinkConfig.model_validate(
        {"type": "mqtt", "homeassistant": {"configuration_url": "http://kiosk-1.lan:8080/"}}
    )
    context = PluginContext("kiosk-1", Path("/nonexistent"), ("hall",), control=StaticControl())
    sink = MqttSink("broker", config, context)
    [(_topic, payload)] = sink._discovery_messages()
    device_config = json.loads(payload)
    assert set(device_config["device"]) <= DEVICE_KEYS
    assert device_config["device"]["configuration_url"] == "http://kiosk-1.lan:8080/"
    components = device_config["components"]
    diagnostics = diagnostics_payload(STATUS)
    assert json.loads(diagnostics)["last_final_age"] == 4.44  # milliseconds, not float noise
    assert json.loads(diagnostics)["seconds_streamed_today"] == 812.032
    switch = components["hall_transcribing"]
    assert switch["platform"] == "switch"
    assert set(switch) <= SWITCH_KEYS
    assert switch["command_topic"] == "listend/kiosk-1/hall/transcribing/set"
    assert switch["state_topic"] == "listend/kiosk-1/hall/transcribing"
    connected = components["hall_connected"]
    assert set(connected) <= BINARY_SENSOR_KEYS
    assert render(connected["value_template"], diagnostics) == "ON"
    expected = {
        "hall_engine": "deepgram",
        "hall_last_final_age": "4.44",
        "hall_streamed_today": "812.032",
        "sink_broker_outbox_depth": None,
        "sink_archive_outbox_depth": None,
    }
    for component_id, state in expected.items():
        component = components[component_id]
        assert component["platform"] == "sensor"
        assert set(component) <= SENSOR_KEYS
        assert component["entity_category"] == "diagnostic"
        if state is not None:
            assert render(component["value_template"], diagnostics) == state
    depth = components["sink_archive_outbox_depth"]
    assert depth["state_topic"] == "listend/kiosk-1/sinks/archive/diagnostics"
    assert render(depth["value_template"], json.dumps({"outbox_depth": 3})) == "3"
    unknown = diagnostics_payload(StreamStatus(False, "local", None, 0.0, True))
    assert render(components["hall_last_final_age"]["value_template"], unknown) == "None"
    # without the option, the link is the captions page the daemon serves
    plain = MqttSinkConfig.model_validate({"type": "mqtt", "homeassistant": {}})
    [(_topic, payload)] = MqttSink("broker", plain, context)._discovery_messages()
    assert json.loads(payload)["device"]["configuration_url"] == "http://kiosk-1:8080/"
    ids = [c["unique_id"] for c in components.values()]
    assert len(set(ids)) == len(ids)
    assert all(ID.match(i) for i in ids)


def daemon_config(tmp_path: Path, dg: DeepgramTestServer, port: int, device: str) -> Path:
    wav = Script().generate(60, seed=3).write_wav(tmp_path / "speech.wav")
    key = tmp_path / "key"
    key.write_text(dg.api_key)
    path = tmp_path / "listend.yaml"
    path.write_text(f"""\
device: {device}
state_dir: {tmp_path / "state"}
deepgram: {{url: "{dg.url}", api_key: "$file:{key}"}}
sources:
  hall: {{type: file, path: "{wav}", realtime: true}}
sinks:
  broker:
    type: mqtt
    host: 127.0.0.1
    port: {port}
    homeassistant: {{prefix: ha{device}, diagnostics_interval: 0.2}}
""")
    return path


@async_test
async def test_the_switch_pauses_the_source_and_survives_a_restart(mosquitto_port, tmp_path):
    device = f"d{uuid.uuid4().hex[:10]}"
    base = f"listend/{device}/hall"
    sub = await asyncio.to_thread(Subscriber, mosquitto_port, [f"listend/{device}/#"])
    host = load_plugins()
    try:
        async with DeepgramTestServer() as dg:
            path = daemon_config(tmp_path, dg, mosquitto_port, device)
            daemon = Daemon(load_config(path, host), host)
            run = asyncio.create_task(daemon.run())

            def state_is(value: bytes) -> bool:
                return any(m.payload == value for m in sub.on(f"{base}/transcribing"))

            def diagnostics() -> list[dict]:
                return [m.json() for m in sub.on(f"{base}/diagnostics")]

            await wait_until_async(lambda: state_is(b"ON"), what="the switch state ON")

            await wait_until_async(
                lambda: any(d["connected"] for d in diagnostics()), what="connected diagnostics"
            )
            sub.client.publish(f"{base}/transcribing/set", "OFF", qos=1)
            await wait_until_async(lambda: state_is(b"OFF"), what="the switch state OFF")
            assert daemon.sessions["hall"].paused
            await wait_until_async(
                lambda: any(d["paused"] for d in diagnostics()), what="paused diagnostics"
            )
            last = diagnostics()[-1]
            assert last["engine"] == "deepgram"
            assert round(last["seconds_streamed_today"], 3) == last["seconds_streamed_today"]
            assert any(
                m.json() == {"outbox_depth": m.json()["outbox_depth"]}
                for m in sub.on(f"listend/{device}/sinks/broker/diagnostics")
            )
            late = await asyncio.to_thread(Subscriber, mosquitto_port, [f"{base}/transcribing"])
            await asyncio.to_thread(
                late.wait_for, lambda m: any(x.retain for x in m), 20, "the retained state"
            )
            assert [m.payload for m in late.messages if m.retain] == [b"OFF"]
            late.close()
            daemon.request_stop()
            assert await asyncio.wait_for(run, 60) == 0
            # a restart: the source comes back paused, before any broker is reachable
            again = Daemon(load_config(path, host), host)
            assert again.make_session(again.config, "hall").paused
    finally:
        cleaner = sub.client
        retained = ("transcribing", "diagnostics", "status")
        topics = {m.topic for m in sub.messages if m.topic.endswith(retained)}
        for topic in {*topics, f"ha{device}/device/listend_{device}/config"}:
            cleaner.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        sub.close()


def test_event_times_are_written_to_the_millisecond():
    event = transcript("hall", 1, "hello there", device="kiosk-1")
    noisy = event.model_copy(update={"start": 4.4399999999999995, "end": 5.1000000000000005})
    payload = json.loads(to_json(noisy))
    assert (payload["start"], payload["end"]) == (4.44, 5.1)


def test_the_captions_page_link_is_one_other_machines_can_open():
    def page(listen: str) -> str | None:
        config = CaptionsSinkConfig.model_validate({"type": "captions", "listen": listen})
        return CaptionsSink("screen", config, PluginContext("kiosk-1", Path("/x"))).page_url()

    assert page("127.0.0.1:8080") is None  # loopback: only this machine could open it
    assert page("192.0.2.5:8080") == "http://192.0.2.5:8080/"
    assert page("0.0.0.0:8080") == f"http://{socket.gethostname()}:8080/"
