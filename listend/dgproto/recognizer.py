"""What a protocol server needs from a speech recognizer: audio in, hypotheses out.

The server owns the wire (handshake, auth, query parsing, KeepAlive, idle timeout, JSON
messages, close codes); a :class:`Recognizer` owns only the words. Times are seconds since the
start of *this connection's* audio, as Deepgram reports them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, slots=True)
class StreamParams:
    """The query parameters a recognizer cares about, already parsed and validated."""

    encoding: str = "linear16"
    sample_rate: int = 16000
    channels: int = 1
    interim_results: bool = False
    endpointing: int | None = 10  # ms; None when endpointing=false
    utterance_end_ms: int | None = None
    vad_events: bool = False
    punctuate: bool = False
    smart_format: bool = False
    numerals: bool = False
    model: str = "general"
    language: str = "en"
    keywords: tuple[str, ...] = ()
    keyterm: tuple[str, ...] = ()
    multichannel: bool = False
    prerecorded: bool = False  # not a query parameter: the REST API's whole-file requests


@dataclass(frozen=True, slots=True)
class RecognizedWord:
    word: str
    start: float
    end: float
    confidence: float
    punctuated_word: str | None = None


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """One ``Results`` message: an interim (``is_final=False``) or a final segment."""

    is_final: bool
    start: float
    duration: float
    words: tuple[RecognizedWord, ...]
    speech_final: bool = False
    from_finalize: bool = False
    confidence: float = 0.0
    transcript: str | None = None  # default: the words joined (punctuated when present)


@dataclass(frozen=True, slots=True)
class UtteranceEnd:
    last_word_end: float


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    timestamp: float


RecognizerOutput = Hypothesis | UtteranceEnd | SpeechStarted


class UnsupportedParams(ValueError):  # noqa: N818 - reads as the reason in `raise`
    """Raised by a recognizer factory for parameters it cannot honour; the server answers 400."""


@dataclass
class RecognizerInfo:
    """Reported in ``metadata.model_info`` and the final ``Metadata`` message."""

    name: str
    version: str = "1"
    arch: str = "listend"
    extra: dict[str, str] = field(default_factory=dict)
    kind: Literal["scripted", "local"] = "local"


class Recognizer(ABC):
    """One instance per connection; calls are never concurrent."""

    info: RecognizerInfo

    @abstractmethod
    async def feed(self, audio: bytes) -> list[RecognizerOutput]:
        """Consume audio in the declared format; return what it produced, in order."""

    @abstractmethod
    async def finalize(self) -> list[RecognizerOutput]:
        """Flush pending speech as final(s) with ``from_finalize=True`` (client's Finalize)."""

    @abstractmethod
    async def close(self) -> list[RecognizerOutput]:
        """End of stream (CloseStream): the remaining finals."""

    async def aclose(self) -> None:  # noqa: B027 - optional
        """Release resources (return a pooled decoder)."""
