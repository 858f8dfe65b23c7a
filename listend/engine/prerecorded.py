"""Deepgram's prerecorded JSON (``POST /v1/listen``) built from the local engine's finals."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from listend.dgproto.recognizer import Hypothesis, RecognizedWord, RecognizerInfo

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
#: Features Deepgram offers that this engine cannot do: accepted, reported in metadata.warnings.
UNSUPPORTED = (
    "diarize",
    "summarize",
    "topics",
    "intents",
    "sentiment",
    "detect_entities",
    "detect_language",
    "redact",
    "search",
    "replace",
    "numerals",
    "profanity_filter",
    "filler_words",
    "dictation",
    "measurements",
    "custom_topic",
    "custom_intent",
)
PARAGRAPH_GAP = 2.0  # seconds of silence that start a new paragraph


class BadOptions(ValueError):  # noqa: N818 - reads as the reason in `raise`
    """A query parameter the REST endpoint cannot parse (400)."""


@dataclass(frozen=True)
class PrerecordedOptions:
    model: str = "general"
    language: str = "en"
    punctuate: bool = False
    smart_format: bool = False
    numerals: bool = False
    utterances: bool = False
    paragraphs: bool = False
    multichannel: bool = False
    diarize: bool = False
    utt_split: float = 0.8
    keywords: tuple[str, ...] = ()
    keyterm: tuple[str, ...] = ()
    tag: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    encoding: str | None = None
    sample_rate: int | None = None
    channels: int = 1
    callback: str | None = None
    callback_method: str = "POST"
    ignored: tuple[str, ...] = field(default=())

    @classmethod
    def from_query(cls, query: Mapping[str, Sequence[str]]) -> PrerecordedOptions:
        def one(key: str) -> str | None:
            values = query.get(key)
            return values[-1] if values else None

        def flag(key: str) -> bool:
            value = one(key)
            if value is None or value.lower() in _FALSE:
                return False
            if value.lower() in _TRUE:
                return True
            raise BadOptions(f"{key}: expected true or false, found {value!r}")

        def number(key: str, kind: Callable[[str], Any]) -> Any:
            value = one(key)
            if value is None:
                return None
            try:
                return kind(value)
            except ValueError:
                raise BadOptions(f"{key}: expected a number, found {value!r}") from None

        method = (one("callback_method") or "POST").upper()
        if method not in {"POST", "PUT"}:
            raise BadOptions(f"callback_method: expected POST or PUT, found {method!r}")
        utt_split = number("utt_split", float)
        return cls(
            model=one("model") or "general",
            language=one("language") or "en",
            punctuate=flag("punctuate"),
            smart_format=flag("smart_format"),
            numerals=flag("numerals"),
            utterances=flag("utterances"),
            paragraphs=flag("paragraphs"),
            multichannel=flag("multichannel"),
            diarize=flag("diarize"),
            utt_split=0.8 if utt_split is None else utt_split,
            keywords=tuple(query.get("keywords", ())),
            keyterm=tuple(query.get("keyterm", ())),
            tag=tuple(query.get("tag", ())),
            extra=tuple(query.get("extra", ())),
            encoding=one("encoding"),
            sample_rate=number("sample_rate", int),
            channels=number("channels", int) or 1,
            callback=one("callback"),
            callback_method=method,
            ignored=tuple(
                key for key in UNSUPPORTED if one(key) not in {None, "false", "False", ""}
            ),
        )

    @property
    def punctuated(self) -> bool:
        return self.punctuate or self.smart_format or self.paragraphs


def model_uuid(info: RecognizerInfo) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"listend:{info.name}:{info.version}"))


def _word_json(word: RecognizedWord, options: PrerecordedOptions) -> dict[str, Any]:
    data: dict[str, Any] = {
        "word": word.word,
        "start": word.start,
        "end": word.end,
        "confidence": word.confidence,
    }
    if options.punctuated:
        data["punctuated_word"] = word.punctuated_word or word.word
    if options.diarize:
        data["speaker"] = 0  # no speaker model: everyone is speaker 0 (see warnings)
    return data


def _text(words: Sequence[RecognizedWord], options: PrerecordedOptions) -> str:
    if options.punctuated:
        return " ".join(w.punctuated_word or w.word for w in words)
    return " ".join(w.word for w in words)


def _confidence(words: Sequence[RecognizedWord]) -> float:
    return round(sum(w.confidence for w in words) / len(words), 4) if words else 0.0


def _paragraphs(finals: Sequence[Hypothesis], options: PrerecordedOptions) -> dict[str, Any]:
    groups: list[list[Hypothesis]] = []
    for final in finals:
        if not final.words:
            continue
        if groups and final.words[0].start - groups[-1][-1].words[-1].end < PARAGRAPH_GAP:
            groups[-1].append(final)
        else:
            groups.append([final])
    paragraphs = []
    texts = []
    for group in groups:
        sentences: list[dict[str, Any]] = [
            {"text": _text(f.words, options), "start": f.words[0].start, "end": f.words[-1].end}
            for f in group
        ]
        texts.append(" ".join(str(s["text"]) for s in sentences))
        paragraph: dict[str, Any] = {
            "sentences": sentences,
            "num_words": sum(len(f.words) for f in group),
            "start": sentences[0]["start"],
            "end": sentences[-1]["end"],
        }
        if options.diarize:
            paragraph["speaker"] = 0
        paragraphs.append(paragraph)
    transcript = "\n" + "\n\n".join(texts) if texts else ""
    return {"transcript": transcript, "paragraphs": paragraphs}


def build_response(
    *,
    request_id: str,
    sha256: str,
    duration: float,
    channels: Sequence[Sequence[Hypothesis]],
    options: PrerecordedOptions,
    info: RecognizerInfo,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """The full JSON body, shaped like Deepgram's ``ListenV1Response``."""
    model = model_uuid(info)
    results_channels = []
    utterances = []
    for index, finals in enumerate(channels):
        words = [w for f in finals for w in f.words]
        alternative: dict[str, Any] = {
            "transcript": _text(words, options),
            "confidence": _confidence(words),
            "words": [_word_json(w, options) for w in words],
        }
        if options.paragraphs:
            alternative["paragraphs"] = _paragraphs(finals, options)
        results_channels.append({"alternatives": [alternative]})
        for final in finals:
            if not final.words:
                continue
            utterance: dict[str, Any] = {
                "start": final.words[0].start,
                "end": final.words[-1].end,
                "confidence": _confidence(final.words),
                "channel": index,
                "transcript": _text(final.words, options),
                "words": [_word_json(w, options) for w in final.words],
                "id": str(uuid.uuid4()),
            }
            if options.diarize:
                utterance["speaker"] = 0
            utterances.append(utterance)
    metadata: dict[str, Any] = {
        "transaction_key": "deprecated",
        "request_id": request_id,
        "sha256": sha256,
        "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "duration": round(duration, 3),
        "channels": len(channels),
        "models": [model],
        "model_info": {model: {"name": info.name, "version": info.version, "arch": info.arch}},
    }
    if options.tag:
        metadata["tags"] = list(options.tag)
    if options.extra:
        metadata["extra"] = dict(item.partition(":")[::2] for item in options.extra)
    all_warnings = [
        {
            "parameter": key,
            "type": "unsupported",
            "message": f"{key} is not supported by {info.name}",
        }
        for key in options.ignored
    ]
    all_warnings += [{"parameter": "keywords", "type": "ignored", "message": w} for w in warnings]
    if all_warnings:
        metadata["warnings"] = all_warnings
    results: dict[str, Any] = {"channels": results_channels}
    if options.utterances:
        utterances.sort(key=lambda u: (u["start"], u["channel"]))
        results["utterances"] = utterances
    return {"metadata": metadata, "results": results}
