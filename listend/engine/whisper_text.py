"""Whisper's words as Deepgram's: lower-case ``word``, ``punctuated_word`` only when asked for,
numbers spelled out unless ``numerals`` or ``smart_format``.

Whisper always writes punctuation, capitals and digits, and splits some tokens ("6" + ".30",
"23" + "-in"); a token that does not start with a space continues the word before it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from listend.dgproto.recognizer import RecognizedWord
from listend.engine.numbers import spell_number

_EDGE = "\"'\u201c\u201d\u2018\u2019()[]{}\u00ab\u00bb,.;:!?\u2026-\u2014"
_NOT_WORD = re.compile(r"[^\w'.%:]")


@dataclass(frozen=True, slots=True)
class RawWord:
    """One word as faster-whisper reports it (times relative to the decoded audio)."""

    text: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True, slots=True)
class TextStyle:
    punctuate: bool = False
    numerals: bool = False  # digits kept (``numerals`` or ``smart_format``)


def merge_tokens(words: Iterable[RawWord]) -> list[RawWord]:
    merged: list[RawWord] = []
    for word in words:
        if merged and word.text and not word.text[0].isspace():
            last = merged[-1]
            merged[-1] = RawWord(
                last.text + word.text,
                last.start,
                word.end,
                min(last.probability, word.probability),
            )
        else:
            merged.append(word)
    return merged


def _split(raw: str) -> tuple[str, str, str]:
    """``"(23),"`` -> ``("(", "23", "),")``."""
    core = raw.strip(_EDGE)
    if not core:
        return raw, "", ""
    head = raw[: raw.index(core)]
    return head, core, raw[len(head) + len(core) :]


def _pieces(core: str, style: TextStyle) -> list[str]:
    """The spoken words of one written word: itself, or a number spelled out."""
    parts = core.split("-")
    if len(parts) > 1 and any(spell_number(p) for p in parts):  # "23-in": two words
        return [piece for part in parts if part for piece in _pieces(part, style)]
    if style.numerals:
        return [core]
    spelled = spell_number(core)
    return [core] if spelled is None else spelled


def to_words(raw_words: Iterable[RawWord], offset: float, style: TextStyle) -> list[RecognizedWord]:
    """Deepgram words in stream time (``offset`` is where the decoded audio starts)."""
    words: list[RecognizedWord] = []
    for raw in merge_tokens(raw_words):
        head, core, tail = _split(raw.text.strip())
        if not core:
            continue
        pieces = _pieces(core, style)
        start, span = offset + raw.start, max(0.0, raw.end - raw.start)
        total = sum(len(p) for p in pieces)
        at = start
        capitalize = core[:1].isupper() or (core[:1].isdigit() and _sentence_start(words))
        for index, piece in enumerate(pieces):
            until = at + span * len(piece) / total
            shown: str | None = None
            if style.punctuate:
                shown = piece
                if index == 0:
                    shown = head + (shown[:1].upper() + shown[1:] if capitalize else shown)
                if index == len(pieces) - 1:
                    shown += tail
            word = _NOT_WORD.sub("", piece.lower()).strip(".:")
            if word:
                words.append(
                    RecognizedWord(
                        word, round(at, 3), round(until, 3), round(raw.probability, 4), shown
                    )
                )
            at = until
    return words


def _sentence_start(words: list[RecognizedWord]) -> bool:
    if not words:
        return True
    last = words[-1].punctuated_word
    return last is not None and last.endswith((".", "?", "!"))
