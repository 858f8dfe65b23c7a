"""What an MQTT connection is opened with (built from the sink's config)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from paho.mqtt.enums import MQTTProtocolVersion


@dataclass(frozen=True)
class Will:
    topic: str
    payload: str
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True)
class MqttSettings:
    """Everything needed to open a connection (built from the sink's config)."""

    host: str
    port: int
    client_id: str
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv311
    keepalive: int = 60
    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None
    tls_insecure: bool = False
    will: Will | None = None
    timeout: float = 10.0
