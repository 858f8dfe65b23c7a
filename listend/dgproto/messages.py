"""The JSON messages of Deepgram's /v1/listen stream, built exactly as the service sends them.

Field names and nesting follow deepgram-sdk 7.17's ``ListenV1Results`` / ``ListenV1Metadata``
models, so the real SDK parses what we send.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from listend.dgproto.recognizer import (
    Hypothesis,
    RecognizerInfo,
    RecognizerOutput,
    SpeechStarted,
    StreamParams,
    UtteranceEnd,
)

#: Reason Deepgram gives when it closes an idle stream (close code 1011).
IDLE_CLOSE_REASON = (
    "Deepgram did not receive audio data or a text message within the timeout window. "
    "See https://dpgr.am/net0001"
)


def _t(seconds: float) -> float:
    """Times as Deepgram reports them: plain floats, rounded to what a frame can resolve."""
    return round(seconds, 6)


def results(
    hypothesis: Hypothesis,
    *,
    request_id: str,
    model_uuid: str,
    info: RecognizerInfo,
    channel: int = 0,
    channels: int = 1,
) -> dict[str, Any]:
    words = []
    for word in hypothesis.words:
        item: dict[str, Any] = {
            "word": word.word,
            "start": _t(word.start),
            "end": _t(word.end),
            "confidence": word.confidence,
        }
        if word.punctuated_word is not None:
            item["punctuated_word"] = word.punctuated_word
        words.append(item)
    transcript = hypothesis.transcript
    if transcript is None:
        transcript = " ".join(w.punctuated_word or w.word for w in hypothesis.words)
    return {
        "type": "Results",
        "channel_index": [channel, channels],
        "duration": _t(hypothesis.duration),
        "start": _t(hypothesis.start),
        "is_final": hypothesis.is_final,
        "speech_final": hypothesis.speech_final,
        "from_finalize": hypothesis.from_finalize,
        "channel": {
            "alternatives": [
                {
                    "transcript": transcript,
                    "confidence": hypothesis.confidence,
                    "words": words,
                }
            ]
        },
        "metadata": {
            "request_id": request_id,
            "model_info": {"name": info.name, "version": info.version, "arch": info.arch},
            "model_uuid": model_uuid,
        },
    }


def utterance_end(event: UtteranceEnd, *, channel: int = 0, channels: int = 1) -> dict[str, Any]:
    return {
        "type": "UtteranceEnd",
        "channel": [channel, channels],
        "last_word_end": _t(event.last_word_end),
    }


def speech_started(event: SpeechStarted, *, channel: int = 0, channels: int = 1) -> dict[str, Any]:
    return {
        "type": "SpeechStarted",
        "channel": [channel, channels],
        "timestamp": _t(event.timestamp),
    }


def metadata(
    *,
    request_id: str,
    sha256: str,
    created: datetime,
    duration: float,
    channels: int,
    model_uuid: str,
    info: RecognizerInfo,
) -> dict[str, Any]:
    return {
        "type": "Metadata",
        "transaction_key": "deprecated",
        "request_id": request_id,
        "sha256": sha256,
        "created": created.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "duration": _t(duration),
        "channels": channels,
        "models": [model_uuid],
        "model_info": {model_uuid: {"name": info.name, "version": info.version, "arch": info.arch}},
    }


def wanted(output: RecognizerOutput, params: StreamParams) -> bool:
    """Whether the client asked for this kind of message (Deepgram sends only those)."""
    if isinstance(output, Hypothesis):
        return output.is_final or params.interim_results
    if isinstance(output, UtteranceEnd):
        return params.utterance_end_ms is not None
    return params.vad_events


def encode(
    output: RecognizerOutput,
    *,
    params: StreamParams,
    request_id: str,
    model_uuid: str,
    info: RecognizerInfo,
    channel: int = 0,
) -> dict[str, Any]:
    channels = params.channels if params.multichannel else 1
    if isinstance(output, Hypothesis):
        return results(
            output,
            request_id=request_id,
            model_uuid=model_uuid,
            info=info,
            channel=channel,
            channels=channels,
        )
    if isinstance(output, UtteranceEnd):
        return utterance_end(output, channel=channel, channels=channels)
    return speech_started(output, channel=channel, channels=channels)


def error_body(err_code: str, err_msg: str, request_id: str) -> Mapping[str, str]:
    return {"err_code": err_code, "err_msg": err_msg, "request_id": request_id}


def dumps(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))
