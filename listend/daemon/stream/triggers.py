"""Phrase triggers: ``phrase`` events from the transcript, as soon as the words appear.

Matching runs on interim results too, so a trigger fires (``detected``) without waiting for
the final; the final then settles each detection it covers: ``confirmed`` when the utterance's
finals still contain a match, ``retracted`` when they do not. A trigger fires at most once per
utterance (until ``speech_final`` or an ``utterance_end``), unless its detection was retracted.
Words are matched across the utterance so far: its finals, then the current interim.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from listend.daemon.events import (
    AnyEvent,
    PhraseEvent,
    PhraseStatus,
    TranscriptEvent,
    UtteranceEndEvent,
)
from listend.daemon.plugin.trigger_options import TriggerConfig, normalise
from listend.daemon.stream.results import EventFactory

#: Words of an utterance kept for matching (an utterance without endpoints would grow forever).
MAX_UTTERANCE_WORDS = 64
EPSILON = 1e-3


@dataclass(frozen=True, slots=True)
class Token:
    """One normalised word with its source times."""

    word: str
    text: str  # as transcribed (punctuated)
    start: float
    end: float
    confidence: float


@dataclass(frozen=True, slots=True)
class Match:
    tokens: tuple[Token, ...]

    @property
    def text(self) -> str:
        return " ".join(t.text for t in self.tokens)

    @property
    def confidence(self) -> float:
        return sum(t.confidence for t in self.tokens) / len(self.tokens)


class Trigger:
    """One configured trigger, compiled."""

    def __init__(self, name: str, config: TriggerConfig) -> None:
        self.name = name
        self.phrases = [tuple(normalise(p)) for p in config.phrases]
        self.regex = re.compile(config.regex) if config.regex is not None else None
        self.fuzzy = config.fuzzy

    def match(self, tokens: Sequence[Token]) -> Match | None:
        words = [t.word for t in tokens]
        for phrase in self.phrases:
            size = len(phrase)
            for i in range(len(words) - size + 1):
                window = words[i : i + size]
                if tuple(window) == phrase or (
                    self.fuzzy is not None
                    and SequenceMatcher(None, " ".join(window), " ".join(phrase)).ratio()
                    >= self.fuzzy
                ):
                    return Match(tuple(tokens[i : i + size]))
        if self.regex is not None:
            return self._regex_match(tokens)
        return None

    def _regex_match(self, tokens: Sequence[Token]) -> Match | None:
        assert self.regex is not None
        starts, position = [], 0
        for token in tokens:
            starts.append(position)
            position += len(token.word) + 1
        found = self.regex.search(" ".join(t.word for t in tokens))
        if found is None or found.end() == found.start():
            return None
        hit = [
            t
            for t, at in zip(tokens, starts, strict=True)
            if at < found.end() and at + len(t.word) > found.start()
        ]
        return Match(tuple(hit)) if hit else None


def compile_triggers(configs: Mapping[str, TriggerConfig]) -> list[Trigger]:
    return [Trigger(name, config) for name, config in configs.items() if config.enabled]


def _tokens(event: TranscriptEvent) -> list[Token]:
    if event.words:
        return [
            Token(word, w.punctuated_word or w.word, w.start, w.end, w.confidence)
            for w in event.words
            for word in normalise(w.word)
        ]
    words = normalise(event.text)  # an engine without word times: the event's times
    return [Token(w, w, event.start, event.end, event.confidence) for w in words]


@dataclass
class _Utterance:
    finals: list[Token] = field(default_factory=list)
    pending: dict[str, PhraseEvent] = field(default_factory=dict)  # detected, not settled
    confirmed: set[str] = field(default_factory=set)


class PhraseTracker:
    """Per session: watches its transcript events and returns the ``phrase`` events they raise."""

    def __init__(self, triggers: Sequence[Trigger], factory: EventFactory) -> None:
        self.triggers = list(triggers)
        self.factory = factory
        self._utterances: dict[int, _Utterance] = {}  # per channel

    @classmethod
    def of(
        cls, configs: Mapping[str, TriggerConfig], factory: EventFactory
    ) -> PhraseTracker | None:
        """The tracker for a source's triggers; None without any."""
        triggers = compile_triggers(configs)
        return cls(triggers, factory) if triggers else None

    def observe(self, event: AnyEvent) -> list[PhraseEvent]:
        if isinstance(event, UtteranceEndEvent):
            return self._end(event.channel)
        if not isinstance(event, TranscriptEvent):
            return []
        utterance = self._utterances.setdefault(event.channel, _Utterance())
        tokens = utterance.finals + _tokens(event)
        out: list[PhraseEvent] = []
        if event.is_final:
            utterance.finals = tokens[-MAX_UTTERANCE_WORDS:]
            out += self._settle(utterance, event)
        for trigger in self.triggers:
            name = trigger.name
            if name in utterance.pending or name in utterance.confirmed:
                continue
            found = trigger.match(tokens)
            if found is None:
                continue
            detected = self._phrase(event, name, "detected", found)
            out.append(detected)
            if event.is_final:
                utterance.confirmed.add(name)
                out.append(self._phrase(event, name, "confirmed", found, detected))
            else:
                utterance.pending[name] = detected
        if event.is_final and event.speech_final:
            out += self._end(event.channel)
        return out

    def _settle(self, utterance: _Utterance, final: TranscriptEvent) -> list[PhraseEvent]:
        out = []
        for trigger in self.triggers:
            detected = utterance.pending.get(trigger.name)
            if detected is None or detected.end > final.end + EPSILON:
                continue  # the final ends before the detected words: a later one settles it
            del utterance.pending[trigger.name]
            found = trigger.match(utterance.finals)
            if found is not None:
                utterance.confirmed.add(trigger.name)
                out.append(self._phrase(final, trigger.name, "confirmed", found, detected))
            else:
                out.append(self._retraction(final, detected))
        return out

    def _end(self, channel: int) -> list[PhraseEvent]:
        """The utterance is over: detections no final confirmed are retracted."""
        utterance = self._utterances.pop(channel, None)
        if utterance is None:
            return []
        return [self._retraction(None, detected) for detected in utterance.pending.values()]

    def _retraction(self, final: TranscriptEvent | None, detected: PhraseEvent) -> PhraseEvent:
        """The detection, numbered anew, saying the final did not contain it."""
        settled = {"status": "retracted", "detection": detected.id}
        final_id = {"final_id": final.id} if final is not None else {}
        return detected.model_copy(update={**self.factory.numbered(), **settled, **final_id})

    def _phrase(
        self,
        event: TranscriptEvent,
        trigger: str,
        status: PhraseStatus,
        found: Match,
        detected: PhraseEvent | None = None,
    ) -> PhraseEvent:
        start, end = found.tokens[0].start, found.tokens[-1].end
        return PhraseEvent(
            **self.factory.numbered(event.request_id),
            channel=event.channel,
            trigger=trigger,
            status=status,
            text=found.text,
            start=start,
            end=end,
            started_at=self.factory.wall(start),
            at=self.factory.wall(end),
            confidence=found.confidence,
            engine=event.engine,
            final_id=event.id if event.is_final else None,
            detection=detected.id if detected is not None else None,
        )
