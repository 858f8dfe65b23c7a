"""Scripted speech: words written into PCM so a test knows exactly what the transcript must be.

Each letter of a word is a run of constant 16-bit samples whose magnitude names the letter;
consecutive letters alternate in sign (so "ll" stays two letters), words are separated by a
short run of the :data:`PAUSE` value, and silence (zeros) separates utterances. Any chunking of
the bytes, and any replay of a chunk after a reconnect, decodes to the same words at the same
offsets. Unknown sample values (real audio, tones) decode as silence.
"""

from __future__ import annotations

import random
import wave
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from itertools import groupby
from pathlib import Path
from typing import Final

from listend.dgproto.recognizer import (
    Hypothesis,
    RecognizedWord,
    Recognizer,
    RecognizerInfo,
    RecognizerOutput,
    SpeechStarted,
    StreamParams,
    UnsupportedParams,
    UtteranceEnd,
)

ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz0123456789'-"
CHAR_BASE: Final = 2000
CHAR_STEP: Final = 500
PAUSE: Final = 600
CHAR_OF_VALUE: Final = {CHAR_BASE + CHAR_STEP * i: c for i, c in enumerate(ALPHABET)}
VALUE_OF_CHAR: Final = {c: v for v, c in CHAR_OF_VALUE.items()}

#: Words for generated scripts (:meth:`Script.generate`).
_PROSE: Final = (
    "turn on the kitchen lights please open front door close garage set timer for ten "
    "minutes play some music in living room what is weather today tomorrow morning call "
    "mom dad remind me to buy milk bread eggs coffee start vacuum stop alarm lock back "
    "window blinds down up volume louder quieter next song previous pause resume good "
    "night hello listend thank you very much how are doing fine great seven eight nine "
    "bedroom office heating cooling degrees warmer colder water plants feed cat dog"
)
WORDS: Final = tuple(_PROSE.split())


@dataclass(frozen=True, slots=True)
class WordSpan:
    """A scripted word and where it sits in the audio (seconds from the start)."""

    word: str
    start: float
    end: float


@dataclass
class Script:
    """Builds scripted speech: ``Script().say("hello world").silence(2).say(...).pcm()``."""

    sample_rate: int = 16000
    channels: int = 1
    char_ms: int = 40
    pause_ms: int = 80
    silence_after: float = 0.8  # seconds of silence appended after each utterance
    spans: list[WordSpan] = field(default_factory=list)
    utterances: list[str] = field(default_factory=list)
    _frames: bytearray = field(default_factory=bytearray, repr=False)

    @property
    def words(self) -> list[str]:
        return [span.word for span in self.spans]

    @property
    def duration(self) -> float:
        return len(self._frames) / 2 / self.sample_rate

    def _append(self, value: int, frames: int) -> None:
        self._frames += value.to_bytes(2, "little", signed=True) * frames

    def say(self, text: str, *, then_silence: float | None = None) -> Script:
        """One utterance: words separated by pauses, then silence (ends the utterance)."""
        words = text.lower().split()
        if not words:
            raise ValueError("say() needs at least one word")
        char_frames = self.sample_rate * self.char_ms // 1000
        pause_frames = self.sample_rate * self.pause_ms // 1000
        for index, word in enumerate(words):
            bad = sorted(set(word) - set(ALPHABET))
            if bad:
                raise ValueError(f"cannot script {word!r}: characters {bad} (allowed: {ALPHABET})")
            if index:
                self._append(PAUSE, pause_frames)
            start = self.duration
            for position, char in enumerate(word):
                value = VALUE_OF_CHAR[char]
                self._append(value if position % 2 == 0 else -value, char_frames)
            self.spans.append(WordSpan(word, start, self.duration))
        self.utterances.append(" ".join(words))
        return self.silence(self.silence_after if then_silence is None else then_silence)

    def silence(self, seconds: float) -> Script:
        self._append(0, round(seconds * self.sample_rate))
        return self

    def generate(self, seconds: float, *, seed: int = 0, words_per_utterance: int = 7) -> Script:
        """Append utterances of :data:`WORDS` (seeded, so reproducible) until ``seconds``."""
        rng = random.Random(seed)  # noqa: S311 - test data, not crypto
        target = self.duration + seconds
        while self.duration < target:
            count = rng.randint(max(1, words_per_utterance - 3), words_per_utterance + 3)
            self.say(" ".join(rng.choice(WORDS) for _ in range(count)))
        return self

    def pcm(self) -> bytes:
        """Raw little-endian 16-bit PCM (every channel carries the same samples)."""
        mono = bytes(self._frames)
        if self.channels == 1:
            return mono
        frames = (mono[i : i + 2] * self.channels for i in range(0, len(mono), 2))
        return b"".join(frames)

    def write_wav(self, path: Path) -> Path:
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(self.channels)
            wav.setsampwidth(2)
            wav.setframerate(self.sample_rate)
            wav.writeframes(self.pcm())
        return path


def _misheard(word: RecognizedWord, instead: str | None) -> RecognizedWord:
    if instead is None:
        return word
    punctuated = None if word.punctuated_word is None else instead
    return replace(word, word=instead, punctuated_word=punctuated)


def interleave(*scripts: Script) -> bytes:
    """Multichannel PCM with one mono script per channel (shorter ones padded with silence)."""
    monos = [Script.pcm(replace(s, channels=1)) for s in scripts]
    longest = max(len(m) for m in monos)
    samples = [array("h", m.ljust(longest, b"\0")) for m in monos]
    out = array("h", bytes(longest * len(monos)))
    for channel, mono in enumerate(samples):
        out[channel :: len(monos)] = mono
    return out.tobytes()


_SILENCE: Final = "silence"
_PAUSE: Final = "pause"
_FLUSHED: Final = "flushed"  # the rest of a letter cut by Finalize
_ENDPOINT, _UTTERANCE_END, _QUIET = 0, 1, 2  # silence timers, in tie-break order


def _classify(value: int) -> str:
    if value == PAUSE:
        return _PAUSE
    char = CHAR_OF_VALUE.get(abs(value))
    if char is None:
        return _SILENCE
    return char + ("+" if value > 0 else "-")


class ScriptedRecognizer(Recognizer):
    """Decodes :class:`Script` audio into Deepgram-like interim, final and VAD messages.

    Finals: at an endpoint (``endpointing`` ms of silence after a word, ``speech_final``), every
    ``final_every`` words mid-utterance, after ``silence_final`` seconds of silence (an empty
    final, as Deepgram sends), on Finalize (``from_finalize``) and on CloseStream.
    """

    def __init__(
        self,
        params: StreamParams,
        *,
        final_every: int = 6,
        silence_final: float = 2.0,
        min_word: float = 0.02,
        misheard: Mapping[str, str] | None = None,
    ) -> None:
        if params.encoding != "linear16":
            raise UnsupportedParams(
                f"the scripted recognizer reads linear16, not {params.encoding}"
            )
        self.info = RecognizerInfo(name="listend-scripted", kind="scripted")
        self.params = params
        self.rate = params.sample_rate
        self.frame_bytes = 2 * params.channels
        self.final_every = final_every
        self.misheard = dict(misheard or {})  # word -> what interim results show instead
        self.silence_final_frames = round(silence_final * self.rate)
        self.min_word_frames = round(min_word * self.rate)
        self.endpoint_frames = (
            None if params.endpointing is None else params.endpointing * self.rate // 1000
        )
        self.utterance_end_frames = (
            None if params.utterance_end_ms is None else params.utterance_end_ms * self.rate // 1000
        )
        self._leftover = b""
        self.pos = 0  # frames consumed on this connection
        self.run_class = _SILENCE
        self.run_start = 0
        self.seg_start = 0  # start of audio not yet covered by a final
        self.seg_words: list[RecognizedWord] = []
        self.word_chars: list[str] = []
        self.word_start: int | None = None
        self.last_word_end: int | None = None
        self.utterance_end_sent = True
        self.in_speech = False
        self.new_utterance = True

    async def feed(self, audio: bytes) -> list[RecognizerOutput]:
        data = self._leftover + audio
        usable = len(data) - len(data) % self.frame_bytes
        self._leftover = data[usable:]
        samples = memoryview(data[:usable]).cast("h")[:: self.params.channels]
        out: list[RecognizerOutput] = []
        for value, group in groupby(samples):  # runs of one sample value: a letter, a pause
            self._advance(_classify(value), len(list(group)), out)
        return out

    async def finalize(self) -> list[RecognizerOutput]:
        out: list[RecognizerOutput] = []
        self._cut_word(out)
        out.append(self._final(self.pos, speech_final=False, from_finalize=True))
        return out

    async def close(self) -> list[RecognizerOutput]:
        out: list[RecognizerOutput] = []
        self._cut_word(out)
        if self.seg_words:
            out.append(self._final(self.pos, speech_final=True))
        return out

    # -- decoding -------------------------------------------------------------------------

    def _advance(self, cls: str, frames: int, out: list[RecognizerOutput]) -> None:
        if cls != self.run_class:
            self._run_ended(cls, out)
            self.run_class = cls
            self.run_start = self.pos
        if cls == _SILENCE:
            self._silence_until(self.pos + frames, out)
        self.pos += frames

    def _run_ended(self, next_cls: str, out: list[RecognizerOutput]) -> None:
        prev = self.run_class
        if prev not in (_SILENCE, _PAUSE, _FLUSHED):
            self.word_chars.append(prev[:-1])
        next_is_char = next_cls not in (_SILENCE, _PAUSE)
        if not next_is_char and self.word_start is not None:
            self._word_done(self.pos, out, endpoint_next=next_cls == _SILENCE)
        if next_is_char and self.word_start is None:
            self.word_start = self.pos
            if not self.in_speech:
                self.in_speech = True
                out.append(SpeechStarted(self.pos / self.rate))

    def _word_done(
        self, end: int, out: list[RecognizerOutput], *, endpoint_next: bool = False
    ) -> None:
        start, text = self.word_start, "".join(self.word_chars)
        self.word_start, self.word_chars = None, []
        if start is None or not text or end - start < self.min_word_frames:
            return
        punctuated = None
        if self.params.punctuate or self.params.smart_format:
            punctuated = text.capitalize() if self.new_utterance else text
        self.new_utterance = False
        self.seg_words.append(
            RecognizedWord(text, start / self.rate, end / self.rate, 0.99, punctuated)
        )
        self.last_word_end = end
        self.utterance_end_sent = False
        out.append(self._interim(end))
        if len(self.seg_words) >= self.final_every and not endpoint_next:
            out.append(self._final(end, speech_final=False))

    def _cut_word(self, out: list[RecognizerOutput]) -> None:
        """Finalize/close mid-word: what was heard of it counts as the word."""
        if self.run_class not in (_SILENCE, _PAUSE, _FLUSHED):
            self.word_chars.append(self.run_class[:-1])
            self.run_class = _FLUSHED
        if self.word_start is not None:
            self._word_done(self.pos, out)

    def _silence_until(self, end: int, out: list[RecognizerOutput]) -> None:
        """Fire the timers that fall inside the silence ``[self.pos, end]``, in time order."""
        while (timer := self._next_timer(end)) is not None:
            frame, kind = timer
            if kind == _ENDPOINT:
                self.in_speech = False
                out.append(self._final(frame, speech_final=True))
            elif kind == _UTTERANCE_END:
                self.utterance_end_sent = True
                if self.last_word_end is not None:  # always: the timer starts at a word's end
                    out.append(UtteranceEnd(self.last_word_end / self.rate))
            else:
                self.in_speech = False
                out.append(self._final(frame, speech_final=False))

    def _next_timer(self, end: int) -> tuple[int, int] | None:
        timers: list[tuple[int, int]] = []
        if self.seg_words and self.endpoint_frames is not None:
            timers.append((self.run_start + self.endpoint_frames, _ENDPOINT))
        if (
            self.utterance_end_frames is not None
            and self.last_word_end is not None
            and not self.utterance_end_sent
        ):
            frame = max(self.last_word_end + self.utterance_end_frames, self.run_start)
            timers.append((frame, _UTTERANCE_END))
        quiet_since = self.run_start if self.seg_words else max(self.seg_start, self.run_start)
        timers.append((quiet_since + self.silence_final_frames, _QUIET))
        due = [t for t in timers if self.pos <= t[0] <= end]
        return min(due) if due else None

    def _interim(self, end: int) -> Hypothesis:
        words = self.seg_words
        if self.misheard:  # a hypothesis the final revises (retracted phrase triggers)
            words = [_misheard(w, self.misheard.get(w.word)) for w in words]
        return Hypothesis(
            is_final=False,
            start=self.seg_start / self.rate,
            duration=(end - self.seg_start) / self.rate,
            words=tuple(words),
            confidence=0.99 if self.seg_words else 0.0,
        )

    def _final(self, end: int, *, speech_final: bool, from_finalize: bool = False) -> Hypothesis:
        words = self.seg_words
        if speech_final and words and words[-1].punctuated_word is not None:
            last = words[-1]
            words[-1] = RecognizedWord(
                last.word, last.start, last.end, last.confidence, f"{last.punctuated_word}."
            )
        if speech_final or from_finalize:
            self.new_utterance = True
        final = Hypothesis(
            is_final=True,
            start=self.seg_start / self.rate,
            duration=(end - self.seg_start) / self.rate,
            words=tuple(words),
            speech_final=speech_final,
            from_finalize=from_finalize,
            confidence=0.99 if words else 0.0,
        )
        self.seg_start = end
        self.seg_words = []
        return final
