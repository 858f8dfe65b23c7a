"""Captions and subtitles: SubRip (SRT) and WebVTT cues, plain text lines.

The one home of caption formatting, used by ``listend transcribe`` (a prerecorded result,
Deepgram's JSON as a dict, split into short cues) and by the file sink (one cue per final,
timed in seconds since the source started). Cue text is always one line (a blank line would
end the cue early), escaped for WebVTT, and stripped of control characters: transcript text
comes from the network, and an ESC, a NUL or a right-to-left override written raw to a
terminal or a text file can rewrite what is shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

VTT_HEADER = "WEBVTT\n\n"
MAX_CUE_SECONDS = 6.0
MAX_CUE_CHARS = 84  # two lines of 42, the usual subtitle limit
MAX_GAP = 1.0  # a pause this long starts a new cue
_SPACES = re.compile(r"\s+")
_WHITESPACE_CONTROLS = "\t\n\v\f\r\x1c\x1d\x1e\x1f\x85"
#: C0 and C1 controls, DEL, and the bidirectional overrides/isolates/marks: removed (the
#: whitespace among them becomes a space).
_CONTROLS = {
    **dict.fromkeys([*range(0x20), 0x7F, *range(0x80, 0xA0)]),
    **dict.fromkeys([0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]),
    **{ord(char): " " for char in _WHITESPACE_CONTROLS},
}


def printable(text: str) -> str:
    """``text`` without control characters or bidi overrides (safe on a terminal)."""
    return text.translate(_CONTROLS)


# -- cues ---------------------------------------------------------------------------------


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def srt_time(seconds: float) -> str:
    return _clock(seconds, ",")


def vtt_time(seconds: float) -> str:
    return _clock(seconds, ".")


def one_line(text: str) -> str:
    """Cue text on one line (a blank line would end the cue early), without controls."""
    return _SPACES.sub(" ", printable(text)).strip()


def vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def srt_cue(index: int, start: float, end: float, text: str) -> str:
    """One SubRip block, blank line included (``index`` counts from 1)."""
    end = max(end, start)
    return f"{index}\n{srt_time(start)} --> {srt_time(end)}\n{one_line(text)}\n\n"


def vtt_cue(start: float, end: float, text: str, identifier: str | None = None) -> str:
    """One WebVTT cue, blank line included; the file sink names each cue after its event."""
    end = max(end, start)
    head = f"{identifier}\n" if identifier is not None else ""
    return f"{head}{vtt_time(start)} --> {vtt_time(end)}\n{vtt_escape(one_line(text))}\n\n"


def text_line(text: str) -> str:
    return one_line(text) + "\n"


# -- a prerecorded transcript ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cue:
    start: float
    end: float
    text: str


def _channels(result: dict[str, Any]) -> list[dict[str, Any]]:
    channels = result.get("results", {}).get("channels") or []
    return [(ch.get("alternatives") or [{}])[0] for ch in channels]


def to_text(result: dict[str, Any]) -> str:
    alternatives = _channels(result)
    texts = []
    for alternative in alternatives:
        paragraphs = (alternative.get("paragraphs") or {}).get("transcript")
        texts.append((paragraphs or alternative.get("transcript") or "").strip())
    if len(texts) == 1:
        return texts[0] + "\n"
    return "".join(f"[channel {i}] {text}\n" for i, text in enumerate(texts))


def _word_text(word: dict[str, Any]) -> str:
    return str(word.get("punctuated_word") or word.get("word") or "")


def cues(result: dict[str, Any]) -> list[Cue]:
    """Short cues from word timings: split at pauses, and by length and duration."""
    utterances = result.get("results", {}).get("utterances")
    if utterances:
        groups = [u.get("words") or [] for u in utterances]
    else:
        groups = [alt.get("words") or [] for alt in _channels(result)[:1]]
    found: list[Cue] = []
    for words in groups:
        current: list[dict[str, Any]] = []
        for word in words:
            if current and _breaks(current, word):
                found.append(_cue(current))
                current = []
            current.append(word)
        if current:
            found.append(_cue(current))
    if not found:
        text = "".join(to_text(result).split("\n")).strip()
        duration = float(result.get("metadata", {}).get("duration") or 0.0)
        return [Cue(0.0, duration, text)] if text else []
    return sorted(found, key=lambda c: c.start)


def _breaks(current: list[dict[str, Any]], word: dict[str, Any]) -> bool:
    start = float(current[0]["start"])
    text = " ".join(_word_text(w) for w in current)
    return (
        float(word["start"]) - float(current[-1]["end"]) > MAX_GAP
        or float(word["end"]) - start > MAX_CUE_SECONDS
        or len(text) + 1 + len(_word_text(word)) > MAX_CUE_CHARS
    )


def _cue(words: list[dict[str, Any]]) -> Cue:
    text = " ".join(_word_text(w) for w in words)
    return Cue(float(words[0]["start"]), float(words[-1]["end"]), text)


def to_srt(result: dict[str, Any]) -> str:
    """The cues of ``result`` as SubRip (no blank line after the last cue)."""
    blocks = "".join(srt_cue(i, c.start, c.end, c.text) for i, c in enumerate(cues(result), 1))
    return blocks[:-1]


def to_vtt(result: dict[str, Any]) -> str:
    """The cues of ``result`` as WebVTT (no blank line after the last cue)."""
    blocks = "".join(vtt_cue(c.start, c.end, c.text) for c in cues(result))
    return VTT_HEADER + blocks[:-1]
