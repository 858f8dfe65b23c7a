"""Home Assistant discovery payloads checked against the shape HA documents for device
discovery and for the MQTT ``event`` and ``sensor`` platforms; templates rendered with Jinja2
the way HA renders them (``value_json`` is the parsed payload, ``to_json`` a filter)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from listend.daemon.events import to_json
from listend.daemon.plugin.source import PluginContext
from listend.plugins.ha_discovery import HA_STATE_LIMIT
from listend.plugins.mqtt_sink import MqttSink, MqttSinkConfig
from tests.support.events import transcript
from tests.support.homeassistant import DEVICE_KEYS, EVENT_KEYS, ID, SENSOR_KEYS, render

DISCOVERY_TOPIC = re.compile(
    r"^(?P<prefix>[^/]+)/(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?"
    r"(?P<object_id>[a-zA-Z0-9_-]+)/config$"
)


def discovery_for(mode: str, device: str = "kiosk-1"):
    config = MqttSinkConfig.model_validate(
        {"type": "mqtt", "homeassistant": {"mode": mode, "prefix": "homeassistant"}}
    )
    sink = MqttSink("broker", config, PluginContext(device, Path("/nonexistent"), ()))
    assert sink.discovery is not None
    return sink


def check_availability(availability) -> None:
    [entry] = availability
    assert entry == {
        "topic": "listend/kiosk-1/status",
        "payload_available": "online",
        "payload_not_available": "offline",
    }


def check_component(config: dict, platform: str, sink: MqttSink, source: str) -> None:
    assert ID.match(config["unique_id"])
    assert config["qos"] == 1
    assert config["state_topic"] == sink.topic_for_source(source)
    domain, _, object_id = config["default_entity_id"].partition(".")
    assert domain == platform
    assert re.fullmatch(r"[a-z0-9_]+", object_id)
    final = transcript(source, 7, "x" * 300 + " the end", device="kiosk-1")
    payload = to_json(final)
    if platform == "event":
        assert set(config) <= EVENT_KEYS
        assert config["event_types"] == ["transcript"]
        rendered = json.loads(render(config["value_template"], payload))
        assert rendered["event_type"] in config["event_types"]  # HA drops the event otherwise
        assert rendered["text"] == final.text  # the full transcript, as an attribute
        assert rendered["id"] == final.id
        assert len(json.dumps(rendered)) < 16384  # the recorder keeps attributes this small
    else:
        assert set(config) <= SENSOR_KEYS
        state = render(config["value_template"], payload)
        assert len(state) <= HA_STATE_LIMIT
        assert state == final.text[:HA_STATE_LIMIT]
        assert config["json_attributes_topic"] == config["state_topic"]
        attributes = json.loads(render(config["json_attributes_template"], payload))
        assert isinstance(attributes, dict)
        assert attributes["text"] == final.text


def test_device_discovery_shape():
    sink = discovery_for("device")
    [(topic, payload)] = sink.discovery.messages(["hall", "door"])
    match = DISCOVERY_TOPIC.match(topic)
    assert match
    assert match["component"] == "device"
    assert match["object_id"] == "listend_kiosk-1"
    config = json.loads(payload)
    assert {"device", "origin", "components"} <= set(config)  # required by HA
    assert set(config["device"]) <= DEVICE_KEYS
    assert config["device"]["identifiers"] == ["listend_kiosk-1"]
    assert config["origin"]["name"] == "listend"
    check_availability(config["availability"])
    components = config["components"]
    assert set(components) == {
        "hall_transcript",
        "hall_last_transcript",
        "door_transcript",
        "door_last_transcript",
    }
    unique_ids = [c["unique_id"] for c in components.values()]
    assert len(set(unique_ids)) == len(unique_ids)
    for component_id, component in components.items():
        assert ID.match(component_id)
        platform = component["platform"]
        assert platform in {"event", "sensor"}
        check_component(component, platform, sink, component_id.split("_")[0])


def test_entity_discovery_shape():
    sink = discovery_for("entity")
    messages = sink.discovery.messages(["hall"])
    assert len(messages) == 2
    for topic, payload in messages:
        match = DISCOVERY_TOPIC.match(topic)
        assert match
        assert match["node_id"] == "listend_kiosk-1"
        config = json.loads(payload)
        assert "platform" not in config  # the topic says it
        assert config["origin"]["name"] == "listend"
        assert config["device"]["identifiers"] == ["listend_kiosk-1"]
        check_availability(config["availability"])
        check_component(config, match["component"], sink, "hall")


@pytest.mark.parametrize("text", ["", "short", "ü" * 400])
def test_sensor_state_always_fits(text):
    sink = discovery_for("device")
    components = sink.discovery.components("hall")
    payload = to_json(transcript("hall", 1, text, device="kiosk-1"))
    state = render(components["hall_last_transcript"]["value_template"], payload)
    assert len(state) <= HA_STATE_LIMIT


def test_a_source_with_triggers_gets_a_phrase_event_entity():
    config = MqttSinkConfig.model_validate({"type": "mqtt", "homeassistant": {}})
    context = PluginContext(
        "kiosk-1", Path("/nonexistent"), ("hall", "door"), triggers={"hall": ("help", "desk")}
    )
    sink = MqttSink("broker", config, context)
    assert sink.discovery is not None
    [(_topic, payload)] = sink.discovery.messages(["hall", "door"])
    components = json.loads(payload)["components"]
    assert "door_phrase" not in components  # no triggers there
    entity = components["hall_phrase"]
    assert entity["platform"] == "event"
    assert set(entity) <= EVENT_KEYS
    assert entity["event_types"] == ["desk", "help"]
    assert entity["state_topic"] == sink.topic_for_source("hall", "phrase")
    assert entity["default_entity_id"] == "event.listend_kiosk_1_hall_phrase"
    phrase = {
        "id": "kiosk-1/hall/1/9",
        "source": "hall",
        "trigger": "help",
        "status": "detected",
        "text": "help me",
        "confidence": 0.9,
        "at": "2026-12-01T22:12:47+00:00",
    }
    rendered = json.loads(render(entity["value_template"], json.dumps(phrase)))
    assert rendered["event_type"] == "help"
    assert rendered["text"] == "help me"
