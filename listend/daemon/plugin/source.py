"""What a source plugin provides: a declared audio format and an async stream of bytes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from listend.daemon.plugin.control import DaemonControl
from listend.daemon.plugin.stream_options import StreamOptions
from listend.daemon.plugin.trigger_options import TriggerConfig, check_trigger_names

SAMPLE_WIDTH = {"linear16": 2, "linear32": 4, "mulaw": 1, "alaw": 1}
#: What a stream may declare: Deepgram's range (a WAV header can claim anything, e.g. 1 Hz,
#: which rounds every chunk to 0 frames, or 32767 channels).
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 192000
MAX_CHANNELS = 32


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """Raw PCM as sent to Deepgram: must match the ``encoding``/``sample_rate`` we declare."""

    sample_rate: int
    channels: int = 1
    encoding: str = "linear16"

    @property
    def bytes_per_frame(self) -> int:
        return SAMPLE_WIDTH[self.encoding] * self.channels

    @property
    def bytes_per_second(self) -> int:
        return self.bytes_per_frame * self.sample_rate

    def seconds(self, nbytes: int) -> float:
        return nbytes / self.bytes_per_second

    def problem(self) -> str | None:
        """Why this format cannot be streamed (out of the supported ranges), or None."""
        if self.encoding not in SAMPLE_WIDTH:
            return f"encoding {self.encoding!r} is not one of {', '.join(SAMPLE_WIDTH)}"
        if not MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE:
            return (
                f"a sample rate of {self.sample_rate} Hz is not supported "
                f"({MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz)"
            )
        if not 1 <= self.channels <= MAX_CHANNELS:
            return f"{self.channels} channels are not supported (1..{MAX_CHANNELS})"
        return None


class VadConfig(BaseModel):
    """Voice-activity gating: stream only speech plus pre-roll and hang-over."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    aggressiveness: int = Field(
        default=2, ge=0, le=3, description="0 lets the most through, 3 is strictest about speech"
    )
    pre_roll: float = Field(default=0.5, ge=0, le=5, description="seconds kept before speech")
    hang_over: float = Field(default=1.0, ge=0, le=10, description="seconds kept after speech")


class SourceConfig(BaseModel):
    """Keys every source has; a plugin subclasses it and adds its own options.

    ``defer_build``: a subclass's validator is built when a config first uses its type, not
    when its plugin is imported (each installed type's would otherwise cost RSS in every
    daemon)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    type: str = Field(description="the source type, as listed by `listend plugins`")
    enabled: bool = True
    sinks: list[str] | None = Field(
        default=None, description="names of the sinks that receive this source (default: all)"
    )
    stream: StreamOptions = Field(
        default_factory=StreamOptions,
        description="Deepgram stream options overriding deepgram.options for this source",
    )
    vad: VadConfig | None = None
    fallback: Literal["local"] | None = Field(
        default=None, description="use the local engine while Deepgram is unreachable"
    )
    triggers: dict[str, TriggerConfig] = Field(
        default_factory=dict,
        description="phrase triggers for this source, added to (by name: replacing) the "
        "global `triggers`",
    )

    @field_validator("triggers")
    @classmethod
    def _trigger_names(cls, value: dict[str, TriggerConfig]) -> dict[str, TriggerConfig]:
        return check_trigger_names(value)


@dataclass(frozen=True, slots=True)
class PluginContext:
    """What the daemon tells a plugin about where it runs."""

    device: str
    state_dir: Path
    #: For a sink: the sources routed to it (e.g. for Home Assistant discovery).
    sources: tuple[str, ...] = ()
    #: For a sink: the trigger names of each source routed to it.
    triggers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Read-only stream status and the pause switch (None outside a running daemon).
    control: DaemonControl | None = field(default=None, compare=False)


class Source(ABC):
    """An audio source. ``stream()`` yields raw chunks in ``audio_format`` and returns at EOF.

    A source handles its own device loss (retrying with :func:`listend.api.restarting` or
    :class:`listend.api.Backoff`) and never blocks the event loop: blocking reads belong in a
    thread.
    """

    type_name: ClassVar[str]
    config_model: ClassVar[type[SourceConfig]] = SourceConfig
    #: A live source (microphone, command) delivers audio in real time and cannot wait, so the
    #: session never stops reading it. ``False`` (a file read fast): the session pauses reading
    #: while its replay buffer is full instead of losing audio.
    realtime: bool = True

    def __init__(self, name: str, config: Any, context: PluginContext) -> None:
        self.name = name
        self.config = config
        self.context = context

    @property
    @abstractmethod
    def audio_format(self) -> AudioFormat:
        """The format of every chunk ``stream()`` yields."""

    @abstractmethod
    def stream(self) -> AsyncIterator[bytes]:
        """Yield audio chunks; return when the source has ended for good."""

    def problem(self) -> str | None:
        """Why the source delivers no audio right now (missing device, program exiting), for
        /readyz and STATUS=; None when it does, or when it cannot tell."""
        return None

    @property
    def vad(self) -> VadConfig | None:
        """Voice gating for this source (its ``vad:`` key); None streams everything."""
        config: SourceConfig = self.config
        return config.vad
