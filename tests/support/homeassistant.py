"""What Home Assistant accepts in MQTT discovery, and its template rendering (Jinja2, with
``value_json`` the parsed payload and ``to_json`` a filter)."""

from __future__ import annotations

import json
import re

import jinja2
import jinja2.sandbox

ID = re.compile(r"^[a-zA-Z0-9_-]+$")
# Keys HA's MQTT platforms accept (documented options); anything else would be ignored.
COMMON = {
    "unique_id",
    "name",
    "default_entity_id",
    "icon",
    "qos",
    "availability",
    "availability_mode",
    "device",
    "origin",
    "json_attributes_topic",
    "json_attributes_template",
    "enabled_by_default",
    "entity_category",
    "encoding",
    "platform",
}
EVENT_KEYS = COMMON | {"state_topic", "event_types", "value_template", "device_class"}
SENSOR_KEYS = COMMON | {
    "state_topic",
    "value_template",
    "device_class",
    "unit_of_measurement",
    "state_class",
    "expire_after",
    "force_update",
    "last_reset_value_template",
    "suggested_display_precision",
}
DEVICE_KEYS = {
    "identifiers",
    "connections",
    "name",
    "manufacturer",
    "model",
    "sw_version",
    "hw_version",
    "serial_number",
    "configuration_url",
    "suggested_area",
    "via_device",
}


def render(template: str, payload: str) -> str:
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = json.dumps
    return env.from_string(template).render(value=payload, value_json=json.loads(payload))
