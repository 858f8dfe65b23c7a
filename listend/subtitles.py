"""Captions and subtitles: SubRip (SRT) and WebVTT cues, plain text lines.

The one home of caption formatting, used by ``listend transcribe`` (a prerecorded result,
Deepgram's JSON as a dict, split into short cues) and by the file sink (cues per final,
timed in seconds since the source started, a long final split the same way). Cues follow
subtitle conventions (:func:`build_cues`); cue text never has a blank line (it would end the
cue early), is escaped for WebVTT, and stripped of control characters: transcript text
comes from the network, and an ESC, a NUL or a right-to-left override written raw to a
terminal or a text file can rewrite what is shown.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

VTT_HEADER = "WEBVTT\n\n"
# Subtitle conventions (BBC, Netflix and EBU guidelines agree on these within a little):
MAX_LINE_CHARS = 42  # characters per line
MAX_LINES = 2  # lines per cue
MAX_CUE_SECONDS = 7.0  # on screen at most this long
MIN_CUE_SECONDS = 1.0  # shorter is hard to read (kept only when the next cue starts sooner)
MAX_GAP = 1.0  # a pause this long always starts a new cue
SENTENCE_PAUSE = 0.3  # a sentence end followed by this much silence starts a new cue
PARAGRAPH_PAUSE = 2.0  # text output: a pause this long starts a new paragraph
_SPACES = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"[.?!…][\"')\]]*$")
_CLAUSE_END = re.compile("[,;:\u2014\u2013-][\"')\\]]*$")  # comma ... em/en dash, hyphen
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
    """Text on one line, spaces collapsed, without controls."""
    return _SPACES.sub(" ", printable(text)).strip()


def cue_lines(text: str) -> str:
    """Cue text as at most two lines of about :data:`MAX_LINE_CHARS`, broken at the space
    nearest the middle (after a comma or full stop when one is near); never a blank line,
    which would end the cue early."""
    text = one_line(text)
    if len(text) <= MAX_LINE_CHARS:
        return text
    spaces = [i for i, c in enumerate(text) if c == " "]
    if not spaces:
        return text
    middle = len(text) / 2

    def cost(i: int) -> float:
        longest = max(i, len(text) - i - 1)
        over = max(0, longest - MAX_LINE_CHARS) * 10
        punctuated = 0 if _CLAUSE_END.search(text[:i]) or _SENTENCE_END.search(text[:i]) else 4
        return over + abs(i - middle) + punctuated

    best = min(spaces, key=cost)
    return f"{text[:best]}\n{text[best + 1 :]}"


def vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def srt_cue(index: int, start: float, end: float, text: str) -> str:
    """One SubRip block, blank line included (``index`` counts from 1)."""
    end = max(end, start)
    return f"{index}\n{srt_time(start)} --> {srt_time(end)}\n{cue_lines(text)}\n\n"


def vtt_cue(start: float, end: float, text: str, identifier: str | None = None) -> str:
    """One WebVTT cue, blank line included; the file sink names each cue after its event."""
    end = max(end, start)
    head = f"{identifier}\n" if identifier is not None else ""
    return f"{head}{vtt_time(start)} --> {vtt_time(end)}\n{vtt_escape(cue_lines(text))}\n\n"


def text_line(text: str) -> str:
    return one_line(text) + "\n"


# -- the cue builder ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cue:
    start: float
    end: float
    text: str


@dataclass(frozen=True, slots=True)
class Timed:
    """A word with its timing, whatever it came from (Deepgram's JSON, a final's words)."""

    start: float
    end: float
    text: str


def _fits(words: list[Timed]) -> bool:
    lines = cue_lines(" ".join(w.text for w in words)).split("\n")
    return all(len(line) <= MAX_LINE_CHARS for line in lines)


def _must_break(current: list[Timed], word: Timed) -> bool:
    if word.start - current[-1].end > MAX_GAP or word.end - current[0].start > MAX_CUE_SECONDS:
        return True
    text = " ".join(w.text for w in [*current, word])
    return len(text) > MAX_LINE_CHARS * MAX_LINES or not _fits([*current, word])


def _may_break(current: list[Timed], word: Timed) -> bool:
    """A sentence that ended before a pause: the next one gets its own cue."""
    ended = _SENTENCE_END.search(current[-1].text) is not None
    long_enough = current[-1].end - current[0].start >= MIN_CUE_SECONDS
    return ended and (long_enough or word.start - current[-1].end >= SENTENCE_PAUSE)


def _split_point(current: list[Timed]) -> int:
    """Where to cut a cue that cannot take the next word: after the last sentence or clause
    end in its second half, else at its longest pause there, else before the new word."""
    half = max(1, len(current) // 2)
    for pattern in (_SENTENCE_END, _CLAUSE_END):
        for k in range(len(current) - 1, half - 1, -1):
            if pattern.search(current[k - 1].text):
                return k
    gaps = [(current[k].start - current[k - 1].end, k) for k in range(half, len(current))]
    best_gap, k = max(gaps, default=(0.0, len(current)))
    return k if best_gap > SENTENCE_PAUSE / 2 else len(current)


def build_cues(words: list[Timed]) -> list[Cue]:
    """Cues that follow subtitle conventions: at most two lines of about 42 characters and
    about 7 s, a new cue at each sentence end and long pause, cut at a clause when a sentence
    is too long for one. Times are the words' own; see :func:`readable` for minimum times."""
    found: list[Cue] = []
    current: list[Timed] = []
    for word in words:
        if current and (_must_break(current, word) or _may_break(current, word)):
            keep = len(current) if _may_break(current, word) else _split_point(current)
            found.append(_cue(current[:keep]))
            current = current[keep:]
        current.append(word)
    if current:
        found.append(_cue(current))
    return found


def readable(cues: list[Cue]) -> list[Cue]:
    """Each cue on screen at least :data:`MIN_CUE_SECONDS`, unless the next one starts first."""
    out: list[Cue] = []
    for i, cue in enumerate(cues):
        end = max(cue.end, cue.start + MIN_CUE_SECONDS)
        if i + 1 < len(cues):
            end = min(end, max(cue.end, cues[i + 1].start))
        out.append(Cue(cue.start, end, cue.text))
    return out


def _cue(words: list[Timed]) -> Cue:
    return Cue(words[0].start, words[-1].end, " ".join(w.text for w in words))


class _Final(Protocol):
    """What :func:`final_cues` reads of a final transcript event (``listend.api``'s)."""

    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def text(self) -> str: ...
    @property
    def words(self) -> Sequence[Any]: ...


def final_cues(event: _Final) -> list[Cue]:
    """A live final as cues: one when it fits, else split like a prerecorded transcript."""
    words = [Timed(w.start, w.end, w.punctuated_word or w.word) for w in event.words]
    if not words:
        return [Cue(event.start, event.end, event.text)]
    return build_cues(words)


# -- a prerecorded transcript ---------------------------------------------------------------


def _channels(result: dict[str, Any]) -> list[dict[str, Any]]:
    channels = result.get("results", {}).get("channels") or []
    return [(ch.get("alternatives") or [{}])[0] for ch in channels]


def _timed(words: list[dict[str, Any]]) -> list[Timed]:
    return [
        Timed(
            float(w["start"]), float(w["end"]), one_line(str(w.get("punctuated_word") or w["word"]))
        )
        for w in words
    ]


def paragraphs(words: list[Timed]) -> list[str]:
    """The words as paragraphs, a new one after each pause of :data:`PARAGRAPH_PAUSE`."""
    found: list[list[str]] = []
    last_end: float | None = None
    for word in words:
        if last_end is None or word.start - last_end >= PARAGRAPH_PAUSE:
            found.append([])
        found[-1].append(word.text)
        last_end = word.end
    return [" ".join(p) for p in found]


def _alternative_text(alternative: dict[str, Any]) -> str:
    given = (alternative.get("paragraphs") or {}).get("transcript")
    if given:  # Deepgram's own paragraphs (--paragraphs), controls removed line by line
        return "\n".join(one_line(line) for line in str(given).strip().split("\n"))
    words = _timed(alternative.get("words") or [])
    if words:
        return "\n\n".join(paragraphs(words))
    return one_line(str(alternative.get("transcript") or ""))


def to_text(result: dict[str, Any]) -> str:
    """Plain text in paragraphs (at Deepgram's, else at long pauses); channels labelled."""
    texts = [_alternative_text(alternative) for alternative in _channels(result)]
    if len(texts) == 1:
        return texts[0] + "\n"
    return "\n".join(f"[channel {i}]\n{text}\n" for i, text in enumerate(texts))


def cues(result: dict[str, Any]) -> list[Cue]:
    """The cues of a prerecorded result: by utterance when it has them, then
    :func:`build_cues` and :func:`readable`."""
    utterances = result.get("results", {}).get("utterances")
    if utterances:
        groups = [_timed(u.get("words") or []) for u in utterances]
    else:
        groups = [_timed(alt.get("words") or []) for alt in _channels(result)[:1]]
    found = sorted((c for words in groups for c in build_cues(words)), key=lambda c: c.start)
    if not found:
        text = one_line(to_text(result))
        duration = float(result.get("metadata", {}).get("duration") or 0.0)
        return [Cue(0.0, duration, text)] if text else []
    return readable(found)


def to_srt(result: dict[str, Any]) -> str:
    """The cues of ``result`` as SubRip (no blank line after the last cue)."""
    blocks = "".join(srt_cue(i, c.start, c.end, c.text) for i, c in enumerate(cues(result), 1))
    return blocks[:-1]


def to_vtt(result: dict[str, Any]) -> str:
    """The cues of ``result`` as WebVTT (no blank line after the last cue)."""
    blocks = "".join(vtt_cue(c.start, c.end, c.text) for c in cues(result))
    return VTT_HEADER + blocks[:-1]
