"""Cues people can read: subtitle conventions for `transcribe` and the file sink alike."""

from __future__ import annotations

import srt

from listend.api import Word
from listend.subtitles import (
    MAX_CUE_SECONDS,
    MAX_LINE_CHARS,
    MIN_CUE_SECONDS,
    cue_lines,
    cues,
    final_cues,
    to_srt,
    to_text,
)
from tests.support.events import transcript

SPEECH = (
    "The library closes at six today. Would you like me to reserve the meeting room for "
    "tomorrow morning, or should we wait until the schedule is confirmed by the office? "
    "I think we should wait. Honestly the weather has been terrible all week and nobody "
    "wants to travel across town in the rain just to sit in a cold room for an hour and a "
    "half. Okay. Let me know."
)


def timed_words(text: str, *, pause_after: str = "") -> list[dict]:
    """Words at a steady pace, a short pause after each sentence, a long one after a word."""
    t = 0.0
    words = []
    for token in text.split():
        duration = 0.25 + 0.01 * len(token)
        plain = token.strip(".,?").lower()
        words.append({"word": plain, "punctuated_word": token, "start": t, "end": t + duration})
        t += duration + (0.6 if token.endswith((".", "?")) else 0.05)
        if plain == pause_after:
            t += 3.0
    return words


def result(words: list[dict]) -> dict:
    alternative = {"transcript": " ".join(w["punctuated_word"] for w in words), "words": words}
    return {"results": {"channels": [{"alternatives": [alternative]}]}}


def test_cues_follow_subtitle_conventions():
    made = cues(result(timed_words(SPEECH * 3)))
    assert len(made) > 10
    for i, cue in enumerate(made):
        lines = cue_lines(cue.text).split("\n")  # what srt_cue / vtt_cue write
        assert len(lines) <= 2, cue
        assert all(len(line) <= MAX_LINE_CHARS for line in lines), cue
        assert all(line.strip() for line in lines), "never a blank line"
        assert cue.end - cue.start <= MAX_CUE_SECONDS + 1e-9, cue
        following = made[i + 1].start if i + 1 < len(made) else None
        if following is None or following >= cue.start + MIN_CUE_SECONDS:
            assert cue.end - cue.start >= MIN_CUE_SECONDS - 1e-9, cue
        if following is not None:
            assert cue.end <= following + 1e-9, "cues never overlap"
    # sentences start cues: no cue runs on past a sentence end into the next sentence
    for cue in made:
        flat = cue.text.replace("\n", " ")
        assert ". " not in flat.rstrip(". "), cue
    assert made[0].text == "The library closes at six today."


def test_srt_output_parses_and_keeps_every_word():
    text = to_srt(result(timed_words(SPEECH)))
    parsed = list(srt.parse(text))
    assert " ".join(s.content.replace("\n", " ") for s in parsed) == SPEECH


def test_lines_are_balanced_and_broken_after_punctuation():
    assert cue_lines("short one") == "short one"
    two = cue_lines("The library closes at six on Sunday, and the office opens at nine")
    first, second = two.split("\n")
    assert first.endswith("Sunday,")
    assert max(len(first), len(second)) <= MAX_LINE_CHARS


def test_text_is_in_paragraphs_at_long_pauses():
    text = to_text(result(timed_words(SPEECH, pause_after="hour")))
    first, second = text.strip().split("\n\n")
    assert first.endswith("for an hour")
    assert second.startswith("and a half.")


def test_a_long_final_becomes_several_cues():
    words = timed_words(SPEECH)
    event = transcript("hall", 0, SPEECH, start=words[0]["start"], end=words[-1]["end"])
    event = event.model_copy(
        update={
            "words": tuple(Word(**w, confidence=0.9) for w in words),
        }
    )
    made = final_cues(event)
    assert len(made) > 3
    assert made[0].start == words[0]["start"]
    assert made[-1].end == words[-1]["end"]
    short = transcript("hall", 1, "and the radio", start=2.75, end=3.1)
    assert [(c.start, c.end, c.text) for c in final_cues(short)] == [(2.75, 3.1, "and the radio")]
