"""The transcript event model: its JSON form is the contract for MQTT and HTTP consumers.

Bump :data:`SCHEMA_VERSION` on any incompatible change; adding optional fields is compatible.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, TypeAdapter

SCHEMA_VERSION = 1

EventKind = Literal["final", "interim", "utterance_end", "speech_started", "metadata", "phrase"]
PhraseStatus = Literal["detected", "confirmed", "retracted"]


def _to_ms(value: float) -> float:
    return round(value, 3)


#: Seconds in source time, written to the millisecond: 4.44, not 4.4399999999999995.
Seconds = Annotated[float, PlainSerializer(_to_ms, return_type=float, when_used="json")]


class Word(BaseModel):
    model_config = ConfigDict(frozen=True)

    word: str
    start: Seconds = Field(description="seconds since the source started")
    end: Seconds
    confidence: float
    punctuated_word: str | None = None
    speaker: int | None = None


class _EventBase(BaseModel):
    model_config = ConfigDict(frozen=True)

    v: Literal[1] = Field(default=1, description="schema version (SCHEMA_VERSION)")
    id: str = Field(description="stable id: device/source/epoch/seq; dedupe on it")
    device: str
    source: str
    epoch: int = Field(description="identifies one run of the source (ms since Unix epoch)")
    seq: int = Field(description="position of this event within the epoch")
    channel: int = 0
    request_id: str | None = Field(default=None, description="Deepgram's request id")
    recovered: bool | None = Field(
        default=None,
        description="true: transcribed from the audio spool after a restart; times are those "
        "of the run that captured the audio",
    )

    @property
    def kind(self) -> EventKind:
        raise NotImplementedError


class TranscriptEvent(_EventBase):
    type: Literal["transcript"] = "transcript"
    start: Seconds = Field(description="seconds since the source started")
    end: Seconds
    started_at: datetime = Field(description="UTC wall time of `start`")
    ended_at: datetime = Field(description="UTC wall time of `end`")
    text: str
    words: tuple[Word, ...] = ()
    confidence: float = 0.0
    is_final: bool
    speech_final: bool = False
    from_finalize: bool = False
    engine: str = Field(default="deepgram", description="which engine produced it")

    @property
    def kind(self) -> EventKind:
        return "final" if self.is_final else "interim"


class UtteranceEndEvent(_EventBase):
    type: Literal["utterance_end"] = "utterance_end"
    last_word_end: Seconds = Field(description="seconds since the source started")
    at: datetime

    @property
    def kind(self) -> EventKind:
        return "utterance_end"


class SpeechStartedEvent(_EventBase):
    type: Literal["speech_started"] = "speech_started"
    timestamp: Seconds = Field(description="seconds since the source started")
    at: datetime

    @property
    def kind(self) -> EventKind:
        return "speech_started"


class MetadataEvent(_EventBase):
    """Deepgram's summary of one connection (sent when the stream closes cleanly)."""

    type: Literal["metadata"] = "metadata"
    duration: Seconds = Field(description="seconds of audio this connection received")
    channels: int = 1
    created: str | None = Field(default=None, description="when Deepgram opened the request")
    sha256: str | None = None
    at: datetime

    @property
    def kind(self) -> EventKind:
        return "metadata"


class PhraseEvent(_EventBase):
    """A trigger's phrase was heard: ``detected`` as soon as it appears (often in an interim
    result), then settled by the final as ``confirmed`` or ``retracted``."""

    type: Literal["phrase"] = "phrase"
    trigger: str = Field(description="the trigger's name")
    status: PhraseStatus
    text: str = Field(description="the words that matched, as transcribed")
    start: float = Field(description="seconds since the source started")
    end: float
    started_at: datetime = Field(description="UTC wall time of `start`")
    at: datetime = Field(description="UTC wall time of `end`")
    confidence: float = 0.0
    engine: str = "deepgram"
    final_id: str | None = Field(
        default=None, description="id of the final it belongs to (unset while only interim)"
    )
    detection: str | None = Field(
        default=None, description="confirmed/retracted: id of the `detected` event settled"
    )

    @property
    def kind(self) -> EventKind:
        return "phrase"


Event = Annotated[
    TranscriptEvent | UtteranceEndEvent | SpeechStartedEvent | MetadataEvent | PhraseEvent,
    Field(discriminator="type"),
]


def event_id(device: str, source: str, epoch: int, seq: int) -> str:
    return f"{device}/{source}/{epoch}/{seq}"


def to_json(event: AnyEvent) -> str:
    return event.model_dump_json(exclude_none=True)


AnyEvent = TranscriptEvent | UtteranceEndEvent | SpeechStartedEvent | MetadataEvent | PhraseEvent


_EVENT_ADAPTER: TypeAdapter[AnyEvent] | None = None


def from_json(data: str | bytes) -> AnyEvent:
    global _EVENT_ADAPTER  # noqa: PLW0603 - built once, on first use (only the outbox needs it)
    if _EVENT_ADAPTER is None:
        _EVENT_ADAPTER = TypeAdapter(Event)
    return _EVENT_ADAPTER.validate_json(data)
