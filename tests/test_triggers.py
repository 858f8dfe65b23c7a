"""Phrase triggers: matching, once per utterance, confirmed or retracted by the final."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from listend.daemon.events import PhraseEvent, UtteranceEndEvent, Word, from_json, to_json
from listend.daemon.plugin.stream_options import StreamOptions
from listend.daemon.plugin.trigger_options import TriggerConfig, boosted, normalise
from listend.daemon.stream.results import EventFactory
from listend.daemon.stream.triggers import PhraseTracker, Token, Trigger, compile_triggers
from listend.testing import Script
from tests.support.cli import run_listend
from tests.support.events import T0, transcript


def words(text: str, start: float = 0.0) -> tuple[Word, ...]:
    out = []
    for i, word in enumerate(text.split()):
        at = start + 0.5 * i
        plain = normalise(word)[0]
        out.append(Word(word=plain, start=at, end=at + 0.4, confidence=0.9, punctuated_word=word))
    return tuple(out)


def heard(seq: int, text: str, *, final: bool = False, speech_final: bool = False, start=0.0):
    said = words(text, start)
    event = transcript(
        "hall", seq, text, is_final=final, speech_final=speech_final, start=start, end=said[-1].end
    )
    return event.model_copy(update={"words": said})


def tracker(**triggers: TriggerConfig) -> PhraseTracker:
    factory = EventFactory(device="dev", source="hall", epoch=1, wall_start=T0.timestamp())
    factory.seq = 100
    found = PhraseTracker.of(triggers, factory)
    assert found is not None
    return found


def tokens(text: str) -> list[Token]:
    return [Token(w, w, i, i + 0.5, 0.9) for i, w in enumerate(normalise(text))]


def summary(events: list[PhraseEvent]) -> list[tuple[str, str, str]]:
    return [(e.trigger, e.status, e.text) for e in events]


def test_phrases_match_whole_normalised_words():
    trigger = Trigger("desk", TriggerConfig(phrases=["Call the front desk"]))
    assert trigger.match(tokens("please, CALL the front-desk!")) is not None
    assert trigger.match(tokens("call the front desks")) is None
    assert trigger.match(tokens("recall the front desk")) is None


def test_numerals_match_as_the_stream_gives_them():
    trigger = Trigger("room", TriggerConfig(phrases=["room 10"]))
    assert trigger.match(tokens("room 10 please")) is not None
    assert trigger.match(tokens("room ten please")) is None


def test_regex_matches_the_normalised_text_and_reports_the_words():
    trigger = Trigger("order", TriggerConfig(regex=r"order (number )?\d+"))
    found = trigger.match(tokens("Cancel order number 42, thanks"))
    assert found is not None
    assert found.text == "order number 42"


def test_fuzzy_matching_takes_a_threshold():
    exact = Trigger("help", TriggerConfig(phrases=["call security"]))
    fuzzy = Trigger("help", TriggerConfig(phrases=["call security"], fuzzy=0.85))
    strict = Trigger("help", TriggerConfig(phrases=["call security"], fuzzy=0.99))
    assert exact.match(tokens("call securty now")) is None
    assert fuzzy.match(tokens("call securty now")) is not None
    assert strict.match(tokens("call securty now")) is None
    assert fuzzy.match(tokens("fall asleep now")) is None


def test_a_trigger_needs_something_to_match_and_a_valid_regex():
    with pytest.raises(ValidationError, match="phrases, regex or both"):
        TriggerConfig()
    with pytest.raises(ValidationError, match="invalid regular expression"):
        TriggerConfig(regex="(")
    with pytest.raises(ValidationError, match="at least one word"):
        TriggerConfig(phrases=["?!"])


def test_fires_on_the_interim_once_then_the_final_confirms():
    phrases = tracker(help=TriggerConfig(phrases=["help me"]))
    assert phrases.observe(heard(1, "please")) == []
    first = phrases.observe(heard(2, "please help me"))
    assert summary(first) == [("help", "detected", "help me")]
    assert first[0].final_id is None
    assert (first[0].start, first[0].end) == (0.5, 1.4)
    assert phrases.observe(heard(3, "please help me now")) == []  # once per utterance
    final = heard(4, "Please help me now.", final=True, speech_final=True)
    settled = phrases.observe(final)
    assert summary(settled) == [("help", "confirmed", "help me")]
    assert settled[0].final_id == final.id
    assert settled[0].detection == first[0].id
    # a new utterance fires again
    again = phrases.observe(heard(5, "help me", start=10.0))
    assert summary(again) == [("help", "detected", "help me")]


def test_the_final_without_the_phrase_retracts_it():
    phrases = tracker(help=TriggerConfig(phrases=["help"]))
    detected = phrases.observe(heard(1, "help"))
    final = heard(2, "kelp", final=True, speech_final=True)
    settled = phrases.observe(final)
    assert summary(settled) == [("help", "retracted", "help")]
    assert settled[0].detection == detected[0].id
    assert settled[0].final_id == final.id


def test_a_phrase_only_in_the_final_is_detected_and_confirmed_at_once():
    phrases = tracker(help=TriggerConfig(phrases=["help"]))
    final = heard(1, "help", final=True, speech_final=True)
    out = phrases.observe(final)
    assert summary(out) == [("help", "detected", "help"), ("help", "confirmed", "help")]
    assert out[0].final_id == out[1].final_id == final.id
    assert out[1].detection == out[0].id


def test_a_phrase_across_finals_of_one_utterance_matches():
    phrases = tracker(desk=TriggerConfig(phrases=["front desk"]))
    assert phrases.observe(heard(1, "call the front", final=True)) == []
    out = phrases.observe(heard(2, "desk", start=1.5))
    assert summary(out) == [("desk", "detected", "front desk")]
    assert summary(phrases.observe(heard(3, "desk", final=True, start=1.5))) == [
        ("desk", "confirmed", "front desk")
    ]


def test_a_final_ending_before_the_detection_leaves_it_pending():
    phrases = tracker(help=TriggerConfig(phrases=["help"]))
    phrases.observe(heard(1, "so help", start=0.0))
    assert phrases.observe(heard(2, "so", final=True)) == []
    assert summary(phrases.observe(heard(3, "help", final=True, start=0.5))) == [
        ("help", "confirmed", "help")
    ]


def test_utterance_end_retracts_what_no_final_settled():
    phrases = tracker(help=TriggerConfig(phrases=["help"]))
    phrases.observe(heard(1, "help"))
    end = UtteranceEndEvent(**phrases.factory.numbered(), last_word_end=0.4, at=T0)
    assert summary(phrases.observe(end)) == [("help", "retracted", "help")]


def test_disabled_triggers_are_not_compiled():
    assert compile_triggers({"a": TriggerConfig(phrases=["a"], enabled=False)}) == []


def test_phrase_events_round_trip_as_json():
    phrases = tracker(help=TriggerConfig(phrases=["help"]))
    (event,) = phrases.observe(heard(1, "help"))
    assert event.kind == "phrase"
    assert from_json(to_json(event)) == event


def test_trigger_phrases_are_boosted_unless_off():
    configs = {
        "a": TriggerConfig(phrases=["front desk", "help"]),
        "b": TriggerConfig(phrases=["quiet"], boost=False),
        "c": TriggerConfig(regex="x+"),
    }
    nova3 = boosted(StreamOptions(model="nova-3", keyterm=["help"]), configs)
    assert nova3.keyterm == ["help", "front desk"]
    nova2 = boosted(StreamOptions(model="nova-2"), configs)
    assert nova2.keywords == ["front desk", "help"]
    assert nova2.keyterm is None


def test_trigger_names_are_checked_where_they_are_written(tmp_path):
    wav = tmp_path / "s.wav"
    Script().say("x").write_wav(wav)
    for text, where in [
        ("triggers:\n  'a b': {phrases: [x]}\n", "triggers"),
        (
            f"sources:\n  s: {{type: file, path: {wav}, triggers: {{'a/b': {{regex: x}}}}}}\n",
            "sources.s.triggers",
        ),
    ]:
        result = run_listend("validate", str(write(tmp_path, text)))
        assert result.returncode == 78
        assert f"{where}: trigger names are letters, digits" in result.stderr


def write(tmp_path, text: str):
    path = tmp_path / "listend.yaml"
    path.write_text(
        f"state_dir: {tmp_path}\n{text}sinks:\n  o: {{type: stdout}}\n", encoding="utf-8"
    )
    return path
