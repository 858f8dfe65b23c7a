"""Deepgram ``keywords``/``keyterm`` as a vocabulary boost that keeps open-vocabulary recognition.

pocketsphinx's keyword spotting and grammars lose every other word, and boosting a word the
language model already has does nothing. What works (measured, see the README) is an *alias*:
a new unigram such as ``kitchen_lights__kw0`` with a high LM weight, pronounced as the phrase's
words one after another. Aliases are mapped back to the phrase's words in the results.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache

log = logging.getLogger(__name__)

BASE_WEIGHT = 1000.0  # LM weight of an alias at intensifier 1 (open vocabulary kept up to ~30000)
MAX_WEIGHT = 20000.0
MAX_PHRASES = 100
_WORD = re.compile(r"[a-z0-9']+")
_MIN_PART = 3  # shortest dictionary word used to spell an unknown word

Lookup = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class Alias:
    """A phrase to boost; the decoder pool gives it a pseudo-word token per decoder."""

    words: tuple[str, ...]  # what it stands for, lower case
    display: tuple[str, ...]  # the phrase as the user wrote it (for punctuated_word)
    phones: str
    weight: float


@dataclass(frozen=True, slots=True)
class Boost:
    phrase: str
    intensifier: float = 1.0


def parse_boosts(keywords: Iterable[str], keyterm: Iterable[str]) -> list[Boost]:
    """``keywords`` are ``word`` or ``word:intensifier``; ``keyterm`` phrases have no number."""
    boosts: list[Boost] = []
    for item in keywords:
        phrase, sep, number = item.rpartition(":")
        if sep and _is_number(number):
            boosts.append(Boost(phrase.strip(), float(number)))
        else:
            boosts.append(Boost(item.strip()))
    boosts.extend(Boost(term.strip()) for term in keyterm)
    return [boost for boost in boosts if boost.phrase][:MAX_PHRASES]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def build_aliases(boosts: Iterable[Boost], lookup: Lookup) -> tuple[list[Alias], list[str]]:
    """Aliases for the phrases the dictionary can pronounce; warnings for the others."""
    aliases: list[Alias] = []
    warnings: list[str] = []
    for boost in boosts:
        if boost.intensifier <= 0:
            warnings.append(f"{boost.phrase!r}: the local engine cannot suppress words; ignored")
            continue
        display = tuple(boost.phrase.split())
        words = tuple(_WORD.findall(boost.phrase.lower()))
        phones = [_pronounce(word, lookup) for word in words]
        if not words or any(p is None for p in phones):
            missing = [w for w, p in zip(words, phones, strict=True) if p is None]
            warnings.append(
                f"{boost.phrase!r}: no pronunciation for {', '.join(missing) or 'it'}; ignored"
            )
            continue
        weight = min(MAX_WEIGHT, BASE_WEIGHT * boost.intensifier)
        aliases.append(Alias(words, display, " ".join(p for p in phones if p), weight))
    return aliases, warnings


def _pronounce(word: str, lookup: Lookup) -> str | None:
    """The dictionary's pronunciation, else the word spelled as dictionary words ("list"+"end")."""
    found = lookup(word)
    if found:
        return found
    parts = _split_known(word, lookup)
    if parts is None:
        return None
    log.info("keyword %r is not in the dictionary; pronouncing it as %s", word, "+".join(parts))
    return " ".join(str(lookup(part)) for part in parts)


def _split_known(word: str, lookup: Lookup) -> tuple[str, ...] | None:
    """Fewest dictionary words (each at least 3 letters) that spell ``word``, longest first."""

    @cache
    def best(start: int) -> tuple[str, ...] | None:
        if start == len(word):
            return ()
        choice: tuple[str, ...] | None = None
        for end in range(len(word), start + _MIN_PART - 1, -1):
            part = word[start:end]
            if not lookup(part):
                continue
            rest = best(end)
            if rest is not None and (choice is None or len(rest) + 1 < len(choice)):
                choice = (part, *rest)
        return choice

    return best(0)
