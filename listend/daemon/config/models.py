"""Top-level configuration models. Source and sink options come from their plugins."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from listend.daemon.config.paths import ConfigPath
from listend.daemon.config.secrets import SecretRef, default_credential
from listend.daemon.config.urls import reject_userinfo
from listend.daemon.plugin.sink import SinkConfig
from listend.daemon.plugin.source import SourceConfig
from listend.daemon.plugin.stream_options import StreamOptions

DEFAULT_CONFIG_PATH = Path("/etc/listend/listend.yaml")
DEFAULT_STATE_DIR = Path("/var/lib/listend")
#: The systemd credential read when `deepgram.api_key` is unset (what the installer stores).
DEFAULT_CREDENTIAL = "deepgram"
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def check_identifier(value: str) -> str:
    """Names end up in MQTT topics and Home Assistant ids: keep them to [A-Za-z0-9_-]."""
    if not value or not set(value) <= _ID_CHARS:
        msg = f"expected letters, digits, '_' or '-' only, found {value!r}"
        raise ValueError(msg)
    return value


class DeepgramConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: SecretRef | None = Field(
        default=None,
        description="secret reference; unset: $DEEPGRAM_API_KEY, else the systemd credential "
        "`deepgram` if the service has one, else the local engine",
    )
    access_token: SecretRef | None = Field(
        default=None, description="temporary token (sent as Bearer) instead of an API key"
    )
    url: str | None = Field(
        default=None,
        description="base URL (self-hosted or local server), or 'local' for the offline engine",
    )
    options: StreamOptions = Field(
        default_factory=lambda: StreamOptions(model="nova-3", interim_results=True)
    )
    keepalive_interval: float = Field(
        default=5.0, gt=0, lt=10, description="seconds without audio before a KeepAlive (< 10)"
    )
    replay_buffer_seconds: float = Field(
        default=60.0, ge=0, le=600, description="audio kept for replay after a reconnect"
    )
    spool_max_mb: float = Field(
        default=64.0,
        ge=0,
        le=65536,
        description="disk space per source for audio kept across a restart while the stream is "
        "down or behind (0: no spool)",
    )
    finalize_timeout: float = Field(
        default=3.0, gt=0, le=60, description="seconds to wait for the from_finalize final on stop"
    )
    catchup_speed: float = Field(
        default=10.0,
        ge=0,
        le=1000,
        description="after a reconnect, how many times faster than real time a live source's "
        "backlog is sent (0: as fast as Deepgram takes it); 10 catches up a 30 s outage in ~3 s",
    )
    fallback_after: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="seconds Deepgram must be unreachable before sources with `fallback: local` "
        "use the local engine",
    )

    @field_validator("url")
    @classmethod
    def _no_credentials_in_url(cls, value: str | None) -> str | None:
        return None if value is None else reject_userinfo(value, "api_key: or access_token:")

    @model_validator(mode="after")
    def _one_credential(self) -> DeepgramConfig:
        if self.api_key is not None and self.access_token is not None:
            raise ValueError("set either api_key or access_token, not both")
        return self

    def effective_api_key(self) -> str | None:
        if self.api_key is not None:
            return self.api_key.reveal()
        return os.environ.get("DEEPGRAM_API_KEY") or default_credential(DEFAULT_CREDENTIAL)

    def uses_local_engine(self) -> bool:
        if self.url == "local":
            return True
        return self.url is None and self.access_token is None and not self.effective_api_key()


class LocalEngineConfig(BaseModel):
    """The embedded offline engine (``deepgram.url: local``, no key, or ``fallback: local``)."""

    model_config = ConfigDict(extra="forbid")

    engine: Literal["auto", "pocketsphinx", "whisper", "wyoming"] = Field(
        default="auto",
        description="auto: Whisper when listend[whisper] is installed, else pocketsphinx; "
        "wyoming: finals from the Wyoming server at `wyoming`",
    )
    model: Path | None = Field(
        default=None,
        description="a CTranslate2 Whisper model directory (base.en, small.en ...); "
        "default: the bundled tiny.en",
    )
    wyoming: str | None = Field(
        default=None,
        description="tcp://HOST:PORT of a Wyoming speech-to-text server (engine: wyoming)",
    )

    @model_validator(mode="after")
    def _wyoming_needs_an_address(self) -> LocalEngineConfig:
        if (self.engine == "wyoming") != (self.wyoming is not None):
            raise ValueError("set wyoming: tcp://HOST:PORT together with engine: wyoming")
        return self


class LogConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Literal["debug", "info", "warning", "error"] = "info"


class HealthConfig(BaseModel):
    """The opt-in HTTP endpoint: /healthz, /readyz, /metrics (Prometheus)."""

    model_config = ConfigDict(extra="forbid")

    listen: str = Field(
        default="127.0.0.1:9464",
        description="HOST:PORT to serve on ([::1]:PORT for IPv6); keep it on loopback unless "
        "a firewall guards it",
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        split_listen(value)
        return value

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]


def split_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"`` -> ``("127.0.0.1", 9464)``; ``"[::1]:9464"`` -> ``("::1", 9464)``."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:  # noqa: PLR2004
        raise ValueError(f"expected HOST:PORT, e.g. 127.0.0.1:9464, found {value!r}")
    return host, int(port)


class WyomingConfig(BaseModel):
    """The opt-in Wyoming speech-to-text server (Home Assistant's Assist)."""

    model_config = ConfigDict(extra="forbid")

    listen: str = Field(
        default="0.0.0.0:10300",
        description="HOST:PORT to serve Wyoming on (10300 by convention)",
    )
    zeroconf: bool = Field(
        default=True, description="advertise _wyoming._tcp.local. so Home Assistant discovers it"
    )
    name: str | None = Field(
        default=None, description="zeroconf service name (default: listend-DEVICE)"
    )
    languages: list[str] = Field(
        default_factory=lambda: ["en"],
        min_length=1,
        description="languages offered to Home Assistant; the first is the default",
    )
    stream: StreamOptions = Field(
        default_factory=StreamOptions,
        description="Deepgram stream options overriding deepgram.options for Wyoming requests",
    )
    fallback: Literal["local"] | None = Field(
        default=None, description="use the local engine while Deepgram is unreachable"
    )
    answer_timeout: float = Field(
        default=15.0,
        gt=0,
        le=600,
        description="seconds from audio-stop to the transcript before the request fails",
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        split_listen(value)
        return value


class PluginsConfig(BaseModel):
    """Which installed plugins not to load; read before the others, as they shape the schema."""

    model_config = ConfigDict(extra="forbid")

    disabled: list[str] = Field(
        default_factory=list,
        description="plugin (entry-point) names not to load, as `listend plugins` shows them; "
        "added to $LISTEND_DISABLED_PLUGINS; a change takes effect on restart",
    )

    @field_validator("disabled")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        names = [name.strip() for name in value]
        if not all(names):
            raise ValueError("expected plugin names, found an empty one")
        return names


class ListendConfig(BaseModel):
    """The whole file, with sources and sinks already validated by their plugins' models."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    device: str = Field(default_factory=lambda: os.uname().nodename.split(".")[0])
    deepgram: DeepgramConfig = Field(default_factory=DeepgramConfig)
    local_engine: LocalEngineConfig = Field(default_factory=LocalEngineConfig)
    state_dir: ConfigPath = Field(
        default_factory=lambda: Path(os.environ.get("STATE_DIRECTORY", DEFAULT_STATE_DIR))
    )
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    sinks: dict[str, SinkConfig] = Field(default_factory=dict)
    log: LogConfig = Field(default_factory=LogConfig)
    plugins: PluginsConfig = Field(default_factory=PluginsConfig)
    health: HealthConfig | None = Field(
        default=None, description="HTTP health and metrics endpoint; off unless set"
    )
    wyoming: WyomingConfig | None = Field(
        default=None, description="Wyoming speech-to-text server for Home Assistant; off unless set"
    )
    drain_timeout: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description="seconds a stop (SIGTERM) may spend finalizing streams and flushing "
        "outboxes; the unit's TimeoutStopSec= must be longer",
    )

    @field_validator("device")
    @classmethod
    def _device_id(cls, value: str) -> str:
        return check_identifier(value)

    def shown(self) -> dict[str, object]:
        """The config as `validate --show` prints it: secrets as their references.

        Each source and sink is dumped as its own (plugin) model: dumped as the field's type,
        ``SourceConfig``, it would lose every option its plugin adds (``path``, ``url``...).
        """
        out = self.model_dump(mode="json")
        for section in ("sources", "sinks"):
            items: dict[str, BaseModel] = getattr(self, section)
            out[section] = {name: item.model_dump(mode="json") for name, item in items.items()}
        return out

    def sinks_for(self, source: str) -> list[str]:
        chosen = self.sources[source].sinks
        names = list(self.sinks) if chosen is None else chosen
        return [name for name in names if self.sinks[name].enabled]
