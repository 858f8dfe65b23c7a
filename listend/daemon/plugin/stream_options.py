"""Deepgram streaming options: global defaults in ``deepgram.options``, overridden per source."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

#: REST-only features: Deepgram ignores or rejects them on /v1/listen over WebSocket.
NOT_STREAMING = {
    "summarize": "summarize is not supported on streaming (use `listend transcribe`)",
    "topics": "topics is not supported on streaming (use `listend transcribe`)",
    "intents": "intents is not supported on streaming (use `listend transcribe`)",
    "sentiment": "sentiment is not supported on streaming (use `listend transcribe`)",
    "detect_language": "detect_language is not supported on streaming; set `language`",
}


class StreamOptions(BaseModel):
    """Query parameters of ``listen.v1.connect``. Unset means "Deepgram's default"."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, description="e.g. nova-3")
    language: str | None = None
    encoding: str | None = Field(
        default=None, description="normally taken from the source's audio format"
    )
    sample_rate: int | None = Field(default=None, gt=0, le=192_000)
    channels: int | None = Field(default=None, gt=0, le=32)
    multichannel: bool | None = None
    punctuate: bool | None = None
    smart_format: bool | None = None
    diarize: bool | None = None
    endpointing: Annotated[int, Field(ge=0, le=60_000)] | bool | None = Field(
        default=None, description="ms of silence that ends an utterance, or false"
    )
    interim_results: bool | None = None
    utterance_end_ms: int | None = Field(default=None, ge=1000, le=60_000)
    vad_events: bool | None = None
    keyterm: list[str] | None = None
    keywords: list[str] | None = Field(default=None, description="word or word:boost")
    search: list[str] | None = None
    redact: list[str] | None = None
    numerals: bool | None = None
    replace: list[str] | None = Field(default=None, description="find:replace")
    profanity_filter: bool | None = None
    tag: list[str] | None = None
    extra: dict[str, str] | None = Field(default=None, description="extra key:value metadata")

    # REST-only features: present so the error points at the key and says why.
    summarize: None = Field(default=None, exclude=True, description=NOT_STREAMING["summarize"])
    topics: None = Field(default=None, exclude=True, description=NOT_STREAMING["topics"])
    intents: None = Field(default=None, exclude=True, description=NOT_STREAMING["intents"])
    sentiment: None = Field(default=None, exclude=True, description=NOT_STREAMING["sentiment"])
    detect_language: None = Field(
        default=None, exclude=True, description=NOT_STREAMING["detect_language"]
    )

    @field_validator(*NOT_STREAMING, mode="before")
    @classmethod
    def _reject_rest_only(cls, value: Any, info: ValidationInfo) -> None:
        if value is None or value is False:
            return
        raise ValueError(NOT_STREAMING[str(info.field_name)])

    def merged_over(self, base: StreamOptions) -> StreamOptions:
        """These options with unset ones taken from ``base``."""
        values = base.model_dump(exclude_none=True)
        values.update(self.model_dump(exclude_none=True))
        return StreamOptions.model_validate(values)

    def query(self) -> dict[str, Any]:
        """Keyword arguments for ``listen.v1.connect`` (``extra`` becomes ``key:value`` list)."""
        values = self.model_dump(exclude_none=True)
        extra = values.pop("extra", None)
        if extra:
            values["extra"] = [f"{key}:{value}" for key, value in extra.items()]
        return values
