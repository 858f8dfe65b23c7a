"""Whisper's words as Deepgram's (numerals, punctuation, split tokens) and the engine choice:
pure functions, no model."""

from __future__ import annotations

import pytest

from listend.engine.choice import describe, whisper_settings
from listend.engine.numbers import spell_number
from listend.engine.whisper_model import ModelFileError, verify_model, whisper_installed
from listend.engine.whisper_text import RawWord, TextStyle, to_words
from listend.engine.workers import EngineError


@pytest.mark.parametrize(
    ("token", "spoken"),
    [
        ("23", "twenty three"),
        ("1,905", "one thousand nine hundred five"),
        ("6.30", "six thirty"),
        ("10:05", "ten oh five"),
        ("3.5", "three point five"),
        ("21st", "twenty first"),
        ("50%", "fifty percent"),
        ("7:00", "seven"),
        ("Dr", None),
    ],
)
def test_numbers_are_spelled_as_spoken(token, spoken):
    words = spell_number(token)
    assert (None if words is None else " ".join(words)) == spoken


# As faster-whisper reports "Call Dr. Smith at 6.30, then order 23-in boxes."
RAW = [
    RawWord(" Call", 0.0, 0.3, 0.9),
    RawWord(" Dr.", 0.3, 0.5, 0.8),
    RawWord(" Smith", 0.5, 0.9, 0.9),
    RawWord(" at", 0.9, 1.0, 1.0),
    RawWord(" 6", 1.0, 1.2, 0.7),
    RawWord(".30,", 1.2, 1.6, 0.6),
    RawWord(" then", 1.6, 1.8, 0.9),
    RawWord(" order", 1.8, 2.0, 0.9),
    RawWord(" 23", 2.0, 2.4, 0.8),
    RawWord("-in", 2.4, 2.6, 0.5),
    RawWord(" boxes.", 2.6, 3.0, 0.9),
]


def test_plain_words_spell_numbers_and_drop_punctuation():
    words = to_words(RAW, 10.0, TextStyle())
    assert " ".join(w.word for w in words) == (
        "call dr smith at six thirty then order twenty three in boxes"
    )
    assert all(w.punctuated_word is None for w in words)
    six = next(w for w in words if w.word == "six")
    assert (six.start, six.confidence) == (11.0, 0.6)  # offset added; the merged token's minimum
    starts = [w.start for w in words]
    assert starts == sorted(starts)


def test_punctuate_and_numerals_keep_whispers_text():
    words = to_words(RAW, 0.0, TextStyle(punctuate=True, numerals=True))
    assert " ".join(w.punctuated_word or "" for w in words) == (
        "Call Dr. Smith at 6.30, then order 23 in boxes."
    )
    assert [w.word for w in words][4] == "6.30"
    spelled = to_words(RAW, 0.0, TextStyle(punctuate=True))
    assert " ".join(w.punctuated_word or "" for w in spelled).startswith(
        "Call Dr. Smith at six thirty, then"
    )


def test_engine_choice():
    assert whisper_settings("pocketsphinx") is None
    if whisper_installed():
        assert whisper_settings("auto") is not None
        assert describe().startswith("whisper tiny.en")
    else:
        assert whisper_settings("auto") is None
        with pytest.raises(EngineError, match=r"pip install 'listend\[whisper\]'"):
            whisper_settings("whisper")
    assert describe("pocketsphinx").startswith("pocketsphinx ")
    with pytest.raises(EngineError, match="unknown local engine"):
        whisper_settings("vosk")


def test_a_users_model_needs_its_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelFileError, match=r"model\.bin is missing$"):
        verify_model(tmp_path, None)
