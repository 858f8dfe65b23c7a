"""Home Assistant MQTT discovery payloads for listend's transcripts (pure functions).

Per source, two entities on the source's final-transcript topic:

- an ``event`` entity (``event_types: [transcript]``) whose attributes carry the full text,
  for automations (trigger on its state, read ``trigger.to_state.attributes.text``);
- a ``sensor`` holding the last transcript, cut to Home Assistant's 255-character state
  limit, with the full text as an attribute.

A source with phrase triggers also gets an ``event`` entity on its ``<topic>/phrase`` topic
whose event types are the trigger names (fired on each detection).

All are tied to listend's retained status topic (Last Will ``offline``), so they show as
unavailable when the daemon dies. The payload on the topic stays listend's own event JSON
(the consumer contract): templates map it to what Home Assistant expects, and keep the
attributes small (no word list) so the recorder stores them (it drops attributes > 16 KiB).

Device discovery (one retained config for the device, Home Assistant >= 2024.11) is the
default; ``entity`` mode publishes one config per entity for older installations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from listend.api import __version__
from listend.plugins.ha_controls import ControlTopics, sink_diagnostics, source_controls

HA_STATE_LIMIT = 255
SUPPORT_URL = "https://github.com/listend/listend"

#: Renders the event entity's payload: ``event_type`` plus the attributes worth keeping.
EVENT_VALUE_TEMPLATE = (
    "{{ {'event_type': 'transcript', 'id': value_json.id, 'source': value_json.source, "
    "'text': value_json.text, 'confidence': value_json.confidence, "
    "'speech_final': value_json.speech_final, 'started_at': value_json.started_at, "
    "'ended_at': value_json.ended_at} | to_json }}"
)
PHRASE_VALUE_TEMPLATE = (
    "{{ {'event_type': value_json.trigger, 'id': value_json.id, 'source': value_json.source, "
    "'text': value_json.text, 'confidence': value_json.confidence, "
    "'status': value_json.status, 'at': value_json.at} | to_json }}"
)
SENSOR_VALUE_TEMPLATE = "{{ value_json.text[:%d] }}" % HA_STATE_LIMIT  # noqa: UP031 - Jinja braces
SENSOR_ATTRIBUTES_TEMPLATE = (
    "{{ {'id': value_json.id, 'text': value_json.text, "
    "'confidence': value_json.confidence, 'ended_at': value_json.ended_at} | to_json }}"
)

_NOT_ID = re.compile(r"[^a-zA-Z0-9_-]")


def slug(text: str) -> str:
    """An entity-id-safe form: lower case, ``[a-z0-9_]``."""
    return re.sub(r"[^a-z0-9_]", "_", text.lower())


@dataclass(frozen=True)
class Discovery:
    """What discovery needs to know about this daemon and its MQTT topics."""

    device: str
    status_topic: str
    final_topic: Callable[[str], str]
    prefix: str = "homeassistant"
    qos: int = 1
    mode: Literal["device", "entity"] = "device"
    phrase_topic: Callable[[str], str] | None = None
    triggers: Mapping[str, Sequence[str]] = field(default_factory=dict)  # names, per source
    #: The switch and diagnostics (see :mod:`ha_controls`), when running inside a daemon.
    controls: ControlTopics | None = None
    sinks: tuple[str, ...] = ()  # whose outbox depth is shown
    configuration_url: str | None = None  # e.g. the captions page

    @property
    def node_id(self) -> str:
        return _NOT_ID.sub("_", f"listend_{self.device}")

    @property
    def birth_topic(self) -> str:
        return f"{self.prefix}/status"

    def device_info(self) -> dict[str, Any]:
        info = {
            "identifiers": [self.node_id],
            "name": f"listend {self.device}",
            "manufacturer": "listend",
            "model": "listend speech-to-text daemon",
            "sw_version": __version__,
        }
        if self.configuration_url is not None:
            info["configuration_url"] = self.configuration_url
        return info

    def origin(self) -> dict[str, Any]:
        return {"name": "listend", "sw_version": __version__, "support_url": SUPPORT_URL}

    def availability(self) -> list[dict[str, str]]:
        return [
            {
                "topic": self.status_topic,
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ]

    def components(self, source: str) -> dict[str, dict[str, Any]]:
        """The ``event`` and ``sensor`` configs (and the phrase ``event``) for one source."""
        topic = self.final_topic(source)
        base = f"{self.node_id}_{_NOT_ID.sub('_', source)}"
        entity = f"listend_{slug(self.device)}_{slug(source)}"
        controls = (
            {}
            if self.controls is None
            else source_controls(self.controls, source, base_id=base, entity=entity, qos=self.qos)
        )
        components = controls | {
            f"{source}_transcript": {
                "platform": "event",
                "unique_id": f"{base}_transcript",
                "name": f"{source} transcript",
                "default_entity_id": f"event.{entity}_transcript",
                "state_topic": topic,
                "event_types": ["transcript"],
                "value_template": EVENT_VALUE_TEMPLATE,
                "icon": "mdi:account-voice",
                "qos": self.qos,
            },
            f"{source}_last_transcript": {
                "platform": "sensor",
                "unique_id": f"{base}_last_transcript",
                "name": f"{source} last transcript",
                "default_entity_id": f"sensor.{entity}_last_transcript",
                "state_topic": topic,
                "value_template": SENSOR_VALUE_TEMPLATE,
                "json_attributes_topic": topic,
                "json_attributes_template": SENSOR_ATTRIBUTES_TEMPLATE,
                "icon": "mdi:text-to-speech",
                "qos": self.qos,
            },
        }
        triggers = self.triggers.get(source)
        if triggers and self.phrase_topic is not None:
            components[f"{source}_phrase"] = {
                "platform": "event",
                "unique_id": f"{base}_phrase",
                "name": f"{source} phrase",
                "default_entity_id": f"event.{entity}_phrase",
                "state_topic": self.phrase_topic(source),
                "event_types": sorted(triggers),
                "value_template": PHRASE_VALUE_TEMPLATE,
                "icon": "mdi:bullhorn",
                "qos": self.qos,
            }
        return components

    def sink_components(self, sink: str) -> dict[str, dict[str, Any]]:
        if self.controls is None:
            return {}
        base = f"{self.node_id}_sink_{_NOT_ID.sub('_', sink)}"
        entity = f"listend_{slug(self.device)}_sink_{slug(sink)}"
        return sink_diagnostics(self.controls, sink, base_id=base, entity=entity, qos=self.qos)

    def all_components(self, sources: Iterable[str]) -> dict[str, dict[str, Any]]:
        components: dict[str, dict[str, Any]] = {}
        for source in sorted(set(sources)):
            components.update(self.components(source))
        for sink in sorted(self.sinks):
            components.update(self.sink_components(sink))
        return components

    def messages(self, sources: Iterable[str]) -> list[tuple[str, str]]:
        """``(topic, payload)`` pairs to publish retained with QoS 1."""
        components = self.all_components(sources)
        if self.mode == "device":
            payload = {
                "device": self.device_info(),
                "origin": self.origin(),
                "availability": self.availability(),
                "qos": self.qos,
                "components": components,
            }
            topic = f"{self.prefix}/device/{self.node_id}/config"
            return [(topic, json.dumps(payload, separators=(",", ":")))]
        out = []
        for object_id, config in components.items():
            entity = {k: v for k, v in config.items() if k != "platform"}
            entity.update(
                device=self.device_info(), origin=self.origin(), availability=self.availability()
            )
            topic = f"{self.prefix}/{config['platform']}/{self.node_id}/{object_id}/config"
            out.append((topic, json.dumps(entity, separators=(",", ":"))))
        return out
