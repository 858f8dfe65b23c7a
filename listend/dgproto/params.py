"""Query parameters of ``/v1/listen``: parsed and checked the way Deepgram answers 400."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from listend.dgproto.recognizer import StreamParams

ENCODINGS = frozenset(
    {
        "linear16",
        "linear32",
        "flac",
        "alaw",
        "mulaw",
        "amr-nb",
        "amr-wb",
        "opus",
        "ogg-opus",
        "speex",
        "g729",
    }
)
BOOLEANS = frozenset(
    {
        "detect_entities",
        "diarize",
        "dictation",
        "interim_results",
        "mip_opt_out",
        "multichannel",
        "numerals",
        "profanity_filter",
        "punctuate",
        "smart_format",
        "vad_events",
    }
)
MIN_UTTERANCE_END_MS = 1000
DEFAULT_ENDPOINTING_MS = 10
DEFAULTS = StreamParams()


class BadRequest(ValueError):  # noqa: N818 - it is the HTTP status's name
    """A parameter Deepgram would refuse with 400; the message names it."""


def _one(query: Mapping[str, Sequence[str]], key: str) -> str | None:
    values = query.get(key)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"{key} given {len(values)} times")
    return values[-1]


def _bool(key: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    raise BadRequest(f"{key}: expected true or false, found {value!r}")


def _int(key: str, value: str, *, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{key}: expected an integer, found {value!r}") from None
    if number < minimum:
        raise BadRequest(f"{key}: must be at least {minimum}, found {number}")
    return number


def _keywords(values: Sequence[str]) -> tuple[str, ...]:
    for value in values:
        _, sep, boost = value.rpartition(":")
        if sep and boost:
            try:
                float(boost)
            except ValueError:
                raise BadRequest(f"keywords: bad boost in {value!r}") from None
    return tuple(values)


def parse_params(
    query: Mapping[str, Sequence[str]], *, models: frozenset[str] | None = None
) -> StreamParams:
    """``query`` maps each key to all its values (lists are repeated keys)."""
    flags = {}
    for key in BOOLEANS:
        value = _one(query, key)
        if value is not None:
            flags[key] = _bool(key, value)
    encoding = _one(query, "encoding")
    sample_rate = _one(query, "sample_rate")
    if encoding is not None and encoding not in ENCODINGS:
        raise BadRequest(f"encoding: unknown encoding {encoding!r}")
    if encoding is not None and sample_rate is None:
        raise BadRequest("sample_rate is required when encoding is set")
    channels = _one(query, "channels")
    endpointing_raw = _one(query, "endpointing")
    endpointing: int | None = DEFAULT_ENDPOINTING_MS
    if endpointing_raw is not None:
        lowered = endpointing_raw.lower()
        if lowered == "false":
            endpointing = None
        elif lowered != "true":
            endpointing = _int("endpointing", endpointing_raw, minimum=0)
    utterance_end_raw = _one(query, "utterance_end_ms")
    utterance_end_ms = None
    if utterance_end_raw is not None:
        utterance_end_ms = _int("utterance_end_ms", utterance_end_raw, minimum=MIN_UTTERANCE_END_MS)
    model = _one(query, "model") or DEFAULTS.model
    if models is not None and model not in models:
        raise BadRequest(f"model: no such model {model!r}; available: {', '.join(sorted(models))}")
    return StreamParams(
        encoding=encoding or DEFAULTS.encoding,
        sample_rate=(
            _int("sample_rate", sample_rate, minimum=1) if sample_rate else DEFAULTS.sample_rate
        ),
        channels=_int("channels", channels, minimum=1) if channels else DEFAULTS.channels,
        interim_results=flags.get("interim_results", False),
        endpointing=endpointing,
        utterance_end_ms=utterance_end_ms,
        vad_events=flags.get("vad_events", False),
        punctuate=flags.get("punctuate", False),
        smart_format=flags.get("smart_format", False),
        numerals=flags.get("numerals", False),
        model=model,
        language=_one(query, "language") or DEFAULTS.language,
        keywords=_keywords(query.get("keywords", ())),
        keyterm=tuple(query.get("keyterm", ())),
        multichannel=flags.get("multichannel", False),
    )
