"""Numbers as words: Whisper writes "23" and "6.30"; Deepgram without ``numerals`` says
"twenty three" and "six thirty", and a transcript compared word for word must match that.
"""

from __future__ import annotations

import re

_ONES = (
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen"),
    *("eighteen", "nineteen"),
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_ORDINAL_ENDINGS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_TOKEN = re.compile(r"(\d[\d,]*)(?:([.:])(\d+))?(st|nd|rd|th|%)?$")
_TIME_MINUTES = 59
_MAX_SPOKEN = 10**12


def integer_words(number: int) -> list[str]:
    """``1905`` -> ``one thousand nine hundred five`` (Deepgram drops the "and" too)."""
    if number < len(_ONES):
        return [_ONES[number]]
    if number < 100:  # noqa: PLR2004
        tens, ones = divmod(number, 10)
        return [_TENS[tens]] + ([_ONES[ones]] if ones else [])
    for scale, name in _SCALES:
        if number >= scale:
            high, rest = divmod(number, scale)
            return integer_words(high) + [name] + (integer_words(rest) if rest else [])
    raise AssertionError(number)  # pragma: no cover - the scales cover every number


def _ordinal(words: list[str]) -> list[str]:
    last = words[-1]
    if last in _ORDINAL_ENDINGS:
        spoken = _ORDINAL_ENDINGS[last]
    elif last.endswith("y"):
        spoken = last[:-1] + "ieth"
    else:
        spoken = last + "th"
    return [*words[:-1], spoken]


def spell_number(token: str) -> list[str] | None:
    """The spoken words for a numeric token ("23", "1,000", "6.30", "3:15", "21st", "50%"),
    or None when ``token`` is not one."""
    match = _TOKEN.match(token)
    if match is None:
        return None
    digits, separator, fraction, suffix = match.groups()
    number = int(digits.replace(",", ""))
    if number >= _MAX_SPOKEN:
        return None
    words = integer_words(number)
    if fraction is not None:
        as_time = separator == ":" or (len(fraction) == 2 and int(fraction) <= _TIME_MINUTES)  # noqa: PLR2004
        if as_time:
            minutes = int(fraction)
            if minutes:
                words += (["oh"] if minutes < 10 else []) + integer_words(minutes)  # noqa: PLR2004
        else:
            words += ["point", *(_ONES[int(d)] for d in fraction)]
    if suffix == "%":
        words.append("percent")
    elif suffix is not None:
        words = _ordinal(words)
    return words
