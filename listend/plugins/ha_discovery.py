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

    @property
    def node_id(self) -> str:
        return _NOT_ID.sub("_", f"listend_{self.device}")

    @property
    def birth_topic(self) -> str:
        return f"{self.prefix}/status"

    def device_info(self) -> dict[str, Any]:
        return {
            "identifiers": [self.node_id],
            "name": f"listend {self.device}",
            "manufacturer": "listend",
            "model": "listend speech-to-text daemon",
            "sw_version": __version__,
        }

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
        components = {
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

    def messages(self, sources: Iterable[str]) -> list[tuple[str, str]]:
        """``(topic, payload)`` pairs to publish retained with QoS 1."""
        sources = sorted(set(sources))
        if self.mode == "device":
            components: dict[str, dict[str, Any]] = {}
            for source in sources:
                components.update(self.components(source))
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
        for source in sources:
            for object_id, config in self.components(source).items():
                entity = {k: v for k, v in config.items() if k != "platform"}
                entity.update(
                    device=self.device_info(),
                    origin=self.origin(),
                    availability=self.availability(),
                )
                topic = f"{self.prefix}/{config['platform']}/{self.node_id}/{object_id}/config"
                out.append((topic, json.dumps(entity, separators=(",", ":"))))
        return out
