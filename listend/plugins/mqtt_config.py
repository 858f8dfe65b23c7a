"""The ``mqtt`` sink's options (connection, TLS, topics, Home Assistant)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from listend.api import ConfigPath, SecretRef, SinkConfig


class MqttTls(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ca_file: ConfigPath | None = Field(default=None, description="CA bundle; default: system CAs")
    cert_file: ConfigPath | None = Field(default=None, description="client certificate (PEM)")
    key_file: ConfigPath | None = Field(default=None, description="client key (PEM)")
    insecure: bool = Field(
        default=False, description="skip certificate and host name checks (testing only)"
    )

    @model_validator(mode="after")
    def _files(self) -> MqttTls:
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: {path} does not exist or is not a file")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file")
        return self


class HomeAssistantOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    prefix: str = Field(default="homeassistant", description="HA's discovery prefix")
    mode: Literal["device", "entity"] = Field(
        default="device",
        description="device: one config per device (HA >= 2024.11); entity: one per entity",
    )
    configuration_url: str | None = Field(
        default=None, description="the device page's link, e.g. the captions page's URL"
    )
    diagnostics_interval: float = Field(
        default=30.0, gt=0, le=3600, description="seconds between diagnostics updates"
    )


class MqttSinkConfig(SinkConfig):
    host: str = "localhost"
    port: int | None = Field(default=None, ge=1, le=65535, description="1883, or 8883 with TLS")
    protocol: Literal["3.1.1", "5"] = Field(default="3.1.1", description="MQTT version")
    tls: MqttTls | None = Field(default=None, description="TLS options; `tls: {}` for defaults")
    username: SecretRef | None = None
    password: SecretRef | None = None
    client_id: str | None = Field(default=None, description="default: listend-<device>-<sink>")
    keepalive: int = Field(default=60, ge=5, le=65535)
    qos: Literal[0, 1, 2] = 1
    topic: str = Field(
        default="listend/{device}/{source}/transcript",
        description="finals' topic; other kinds add /interim, /utterance_end, /speech_started",
    )
    status_topic: str = Field(default="listend/{device}/status")
    timeout: float = Field(
        default=10.0, gt=0, le=600, description="seconds for CONNACK and PUBACKs"
    )
    reconnect_max_delay: float = Field(
        default=30.0, gt=0, le=3600, description="backoff cap, seconds"
    )
    homeassistant: HomeAssistantOptions | None = Field(
        default=None, description="Home Assistant MQTT discovery; `homeassistant: {}` enables"
    )

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_number(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @field_validator("topic", "status_topic")
    @classmethod
    def _topic_template(cls, value: str) -> str:
        try:
            rendered = value.format(device="d", source="s")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"placeholders are {{device}} and {{source}}; {exc!s}") from None
        if "+" in rendered or "#" in rendered or not rendered:
            raise ValueError("a topic to publish to cannot be empty or contain + or #")
        return value
