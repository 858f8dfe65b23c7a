"""Home Assistant entities for controlling and watching listend (pure functions).

Per source, when the sink runs inside a daemon (``PluginContext.control``): a ``switch``
(*transcribing*: off pauses the source, so nothing is sent or billed; the state is retained)
and diagnostic entities read from one retained JSON topic (stream connected, engine in use,
seconds since the last final, seconds streamed today); per sink, its outbox depth. Times in
the payloads are rounded to milliseconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from listend.api import StreamStatus

ON, OFF = "ON", "OFF"


def seconds(value: float | None) -> float | None:
    """Milliseconds are plenty, and ``4.44`` reads better than ``4.4399999999999995``."""
    return None if value is None else round(value, 3)


def diagnostics_payload(status: StreamStatus) -> str:
    return json.dumps(
        {
            "connected": status.connected,
            "engine": status.engine,
            "last_final_age": seconds(status.last_final_age),
            "seconds_streamed_today": seconds(status.seconds_streamed_today),
            "paused": status.paused,
        },
        separators=(",", ":"),
    )


def sink_payload(depth: int) -> str:
    return json.dumps({"outbox_depth": depth}, separators=(",", ":"))


@dataclass(frozen=True)
class ControlTopics:
    """Where the switch and the diagnostics live, under the daemon's ``listend/{device}``."""

    base: str

    def switch(self, source: str) -> str:
        return f"{self.base}/{source}/transcribing"

    def command(self, source: str) -> str:
        return f"{self.switch(source)}/set"

    @property
    def commands(self) -> str:
        """The subscription covering every source's command topic."""
        return f"{self.base}/+/transcribing/set"

    def source_of(self, command_topic: str) -> str | None:
        prefix, suffix = f"{self.base}/", "/transcribing/set"
        if command_topic.startswith(prefix) and command_topic.endswith(suffix):
            source = command_topic[len(prefix) : -len(suffix)]
            return source if source and "/" not in source else None
        return None

    def diagnostics(self, source: str) -> str:
        return f"{self.base}/{source}/diagnostics"

    def sink(self, sink: str) -> str:
        return f"{self.base}/sinks/{sink}/diagnostics"


def _diagnostic(template: str, **extra: Any) -> dict[str, Any]:
    return {"value_template": template, "entity_category": "diagnostic", **extra}


def source_controls(
    topics: ControlTopics, source: str, *, base_id: str, entity: str, qos: int
) -> dict[str, dict[str, Any]]:
    """The switch and diagnostic configs of one source, keyed by component id."""
    diag = topics.diagnostics(source)
    out: dict[str, dict[str, Any]] = {
        f"{source}_transcribing": {
            "platform": "switch",
            "command_topic": topics.command(source),
            "state_topic": topics.switch(source),
            "payload_on": ON,
            "payload_off": OFF,
            "state_on": ON,
            "state_off": OFF,
            "optimistic": False,
            "icon": "mdi:microphone",
        },
        f"{source}_connected": {
            "platform": "binary_sensor",
            "state_topic": diag,
            "device_class": "connectivity",
            **_diagnostic("{{ 'ON' if value_json.connected else 'OFF' }}"),
        },
        f"{source}_engine": {
            "platform": "sensor",
            "state_topic": diag,
            "icon": "mdi:engine",
            **_diagnostic("{{ value_json.engine }}"),
        },
        f"{source}_last_final_age": {
            "platform": "sensor",
            "state_topic": diag,
            "unit_of_measurement": "s",
            "device_class": "duration",
            "state_class": "measurement",
            **_diagnostic("{{ value_json.last_final_age }}"),  # "None" is unknown to HA
        },
        f"{source}_streamed_today": {
            "platform": "sensor",
            "state_topic": diag,
            "unit_of_measurement": "s",
            "device_class": "duration",
            "state_class": "total_increasing",
            **_diagnostic("{{ value_json.seconds_streamed_today }}"),
        },
    }
    return _named(out, source, base_id, entity, qos)


def sink_diagnostics(
    topics: ControlTopics, sink: str, *, base_id: str, entity: str, qos: int
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {
        f"sink_{sink}_outbox_depth": {
            "platform": "sensor",
            "state_topic": topics.sink(sink),
            "state_class": "measurement",
            "icon": "mdi:tray-full",
            **_diagnostic("{{ value_json.outbox_depth }}"),
        }
    }
    return _named(out, sink, base_id, entity, qos)


def _named(
    components: dict[str, dict[str, Any]], owner: str, base_id: str, entity: str, qos: int
) -> dict[str, dict[str, Any]]:
    """Add the unique id, name and entity id each component needs."""
    for component_id, config in components.items():
        what = component_id.removeprefix(f"{owner}_").removeprefix(f"sink_{owner}_")
        config.update(
            unique_id=f"{base_id}_{what}",
            name=f"{owner} {what.replace('_', ' ')}",
            default_entity_id=f"{config['platform']}.{entity}_{what}",
            qos=qos,
        )
    return components
