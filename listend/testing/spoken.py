"""Spoken scripts: real speech (espeak-ng) over quiet noise, with every word's place known.

Scripted audio (:class:`~listend.testing.scripted.Script`) is not speech to a voice-activity
detector. A :class:`SpokenScript` is: each word is synthesized by espeak-ng, words are joined
by short pauses, utterances by silence, and quiet noise runs under all of it (as in a room).
Its :class:`SpokenRecognizer` knows the script: it finds where each received piece of audio
sits in the source (the noise makes every stretch unique) and hears a word only when all of
that word's samples arrived, in one piece. It reports times on the connection's clock, as
Deepgram does. So a client that streams only part of the audio (a voice gate) gets exactly the
words whose audio it sent, and must map their times back to the source by itself.
"""

from __future__ import annotations

import json
import operator
import random
import shutil
import subprocess
import wave
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from listend.dgproto.recognizer import (
    Hypothesis,
    RecognizedWord,
    Recognizer,
    RecognizerInfo,
    RecognizerOutput,
    StreamParams,
    UnsupportedParams,
)
from listend.testing.scripted import WORDS, WordSpan

PROBE_BYTES = 64  # enough noisy samples to be unique in hours of audio
TRIM_LEVEL = 300  # a synthesized word starts and ends where it is louder than this
ENDPOINT = 0.3  # seconds after the last word before the recognizer finalizes (speech_final)


class SpeechSynthesisError(RuntimeError):
    """espeak-ng or sox is missing or failed."""


@cache
def synthesize(word: str, sample_rate: int, voice: str = "en-us") -> bytes:
    """One word as 16-bit mono PCM at ``sample_rate``, its surrounding silence trimmed."""
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if espeak is None or sox is None:
        raise SpeechSynthesisError("spoken scripts need espeak-ng and sox")
    speak = [espeak, "-v", voice, "--stdout", word]
    wav = subprocess.run(speak, capture_output=True, check=True, timeout=30).stdout  # noqa: S603
    to_raw = [sox, "-t", "wav", "-", "-t", "raw", "-r", str(sample_rate), "-e", "signed"]
    raw = subprocess.run(  # noqa: S603 - our own arguments, no shell
        [*to_raw, "-b", "16", "-c", "1", "-"],
        input=wav,
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    samples = array("h", raw[: len(raw) - len(raw) % 2])
    loud = [i for i, v in enumerate(samples) if abs(v) > TRIM_LEVEL]
    if not loud:
        raise SpeechSynthesisError(f"espeak-ng said nothing for {word!r}")
    return samples[loud[0] : loud[-1] + 1].tobytes()


@dataclass
class SpokenScript:
    """``SpokenScript().say("turn on the lights").silence(20).say(...).pcm()``."""

    sample_rate: int = 16000
    noise: int = 1  # noise under everything: uniform, about +-128 x this (0: digital silence)
    seed: int = 0  # of the noise
    word_gap: float = 0.08  # seconds between the words of an utterance
    silence_after: float = 0.8
    voice: str = "en-us"
    spans: list[WordSpan] = field(default_factory=list)
    utterances: list[str] = field(default_factory=list)
    _speech: array[int] = field(default_factory=lambda: array("h"), repr=False)

    @property
    def words(self) -> list[str]:
        return [span.word for span in self.spans]

    @property
    def duration(self) -> float:
        return len(self._speech) / self.sample_rate

    @property
    def speech_seconds(self) -> float:
        """Seconds from each utterance's first word to its last word's end."""
        total, first = 0.0, 0
        for utterance in self.utterances:
            count = len(utterance.split())
            total += self.spans[first + count - 1].end - self.spans[first].start
            first += count
        return total

    def say(self, text: str, *, then_silence: float | None = None) -> SpokenScript:
        words = text.lower().split()
        if not words:
            raise ValueError("say() needs at least one word")
        for index, word in enumerate(words):
            if index:
                self.silence(self.word_gap)
            start = self.duration
            self._speech.frombytes(synthesize(word, self.sample_rate, self.voice))
            self.spans.append(WordSpan(word, start, self.duration))
        self.utterances.append(" ".join(words))
        return self.silence(self.silence_after if then_silence is None else then_silence)

    def silence(self, seconds: float) -> SpokenScript:
        self._speech.extend(bytes(round(seconds * self.sample_rate)))
        return self

    def generate(
        self, seconds: float, *, speech_ratio: float = 0.1, seed: int = 0, words: int = 5
    ) -> SpokenScript:
        """A room: utterances of about ``words`` words with silence between them, so that about
        ``speech_ratio`` of ``seconds`` is speech (seeded, so reproducible)."""
        rng = random.Random(seed)  # noqa: S311 - test data
        target = self.duration + seconds
        while True:
            count = rng.randint(max(1, words - 2), words + 2)
            before = self.duration
            self.say(" ".join(rng.choice(WORDS) for _ in range(count)), then_silence=0)
            spoken = self.duration - before
            gap = spoken * (1 / speech_ratio - 1) * rng.uniform(0.5, 1.5)
            if self.duration + gap >= target:
                return self.silence(max(0.0, target - self.duration))
            self.silence(gap)

    def pcm(self) -> bytes:
        """16-bit little-endian mono: the speech plus the noise."""
        if not self.noise:
            return self._speech.tobytes()
        rng = random.Random(self.seed)  # noqa: S311 - test data
        noise = array("b", rng.randbytes(len(self._speech)))
        if self.noise != 1:
            noise = array("h", (v * self.noise for v in noise))
        mixed = map(operator.add, self._speech, noise)
        return array("h", (max(-32768, min(32767, v)) for v in mixed)).tobytes()

    def write_wav(self, path: Path, pcm: bytes | None = None) -> Path:
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(self.sample_rate)
            wav.writeframes(self.pcm() if pcm is None else pcm)
        return path

    def save(self, path: Path) -> Path:
        """``path`` (WAV) plus ``path.json`` (the words) for :meth:`load` in another process."""
        self.write_wav(path)
        spans = [[s.word, s.start, s.end] for s in self.spans]
        meta = {"sample_rate": self.sample_rate, "spans": spans, "utterances": self.utterances}
        path.with_suffix(".json").write_text(json.dumps(meta), encoding="utf-8")
        return path

    def recognizer(self, pcm: bytes | None = None) -> KnownSpeech:
        """What :class:`SpokenRecognizer` needs: this audio and where its words are."""
        return KnownSpeech(self.sample_rate, self.pcm() if pcm is None else pcm, self.spans)


@dataclass(frozen=True)
class KnownSpeech:
    """Source audio and its word spans; call it with stream params to get a recognizer."""

    sample_rate: int
    pcm: bytes
    spans: list[WordSpan]

    @classmethod
    def load(cls, path: Path) -> KnownSpeech:
        meta: dict[str, Any] = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        with wave.open(str(path), "rb") as wav:
            pcm = wav.readframes(wav.getnframes())
        spans = [WordSpan(w, s, e) for w, s, e in meta["spans"]]
        return cls(int(meta["sample_rate"]), pcm, spans)

    def __call__(self, params: StreamParams) -> SpokenRecognizer:
        return SpokenRecognizer(params, self)


@dataclass
class _Piece:
    """Received audio that is one contiguous stretch of the source (in frames)."""

    at: int  # on the connection's clock
    source: int
    length: int


class SpokenRecognizer(Recognizer):
    """Hears the words of a :class:`KnownSpeech` whose samples all arrived (see module doc)."""

    def __init__(self, params: StreamParams, known: KnownSpeech) -> None:
        if params.encoding != "linear16" or params.sample_rate != known.sample_rate:
            msg = f"the spoken recognizer reads linear16 at {known.sample_rate} Hz"
            raise UnsupportedParams(msg)
        self.info = RecognizerInfo(name="listend-spoken", kind="scripted")
        self.params = params
        self.known = known
        self.rate = known.sample_rate
        self.frames = [(round(s.start * self.rate), round(s.end * self.rate)) for s in known.spans]
        self.starts = [start for start, _ in self.frames]
        self.pieces: list[_Piece] = []
        self.received = 0  # frames on this connection
        self.heard: set[int] = set()
        self.pending: list[RecognizedWord] = []  # heard, not final yet
        self.final_end = 0.0  # where the last final ended (connection seconds)
        self._leftover = b""
        self._unmatched = b""

    async def feed(self, audio: bytes) -> list[RecognizerOutput]:
        data = self._leftover + audio
        frame = 2 * self.params.channels
        usable = len(data) - len(data) % frame
        self._leftover = data[usable:]
        mono = data[:usable]
        if self.params.channels > 1:
            mono = array("h", mono)[:: self.params.channels].tobytes()
        out: list[RecognizerOutput] = []
        grown = max(0, len(self.pieces) - 1)  # the pieces this audio extends or adds
        self._locate(mono)
        for piece in self.pieces[grown:]:
            self._listen(piece, out)
        self._endpoint(out)
        return out

    async def finalize(self) -> list[RecognizerOutput]:
        return [self._final(self.received / self.rate, from_finalize=True)]

    async def close(self) -> list[RecognizerOutput]:
        if not self.pending:
            return []
        return [self._final(self.received / self.rate, speech_final=True)]

    def _locate(self, data: bytes) -> None:
        """Append ``data`` to the pieces, finding where in the source each part comes from."""
        source = self.known.pcm
        data = self._unmatched + data
        self._unmatched = b""
        done = 0
        while done < len(data):
            last = self.pieces[-1] if self.pieces else None
            if last is not None and last.at + last.length == self.received:
                src = 2 * (last.source + last.length)
                same = _common_prefix(data, done, source, src)
                if same:
                    last.length += same // 2
                    self.received += same // 2
                    done += same
                    continue
            probe = data[done : done + PROBE_BYTES]
            if len(probe) < PROBE_BYTES:
                self._unmatched = probe  # wait for more to tell where it is from
                return
            at = _find_aligned(source, probe)
            if at < 0:  # not from this source: heard as nothing
                self.received += len(probe) // 2
                done += len(probe)
                continue
            self.pieces.append(_Piece(self.received, at // 2, 0))

    def _listen(self, piece: _Piece, out: list[RecognizerOutput]) -> None:
        first = bisect_left(self.starts, piece.source)
        for index in range(first, len(self.frames)):
            start, end = self.frames[index]
            if end > piece.source + piece.length:
                break
            if index in self.heard:
                continue
            self.heard.add(index)
            at = piece.at + start - piece.source
            self.pending.append(
                RecognizedWord(
                    self.known.spans[index].word,
                    at / self.rate,
                    (at + end - start) / self.rate,
                    0.99,
                )
            )
            if self.params.interim_results:
                out.append(self._hypothesis(self.pending[-1].end, is_final=False))

    def _endpoint(self, out: list[RecognizerOutput]) -> None:
        """Finalize after ENDPOINT seconds without a word, unless one is still arriving."""
        if not self.pending:
            return
        due = self.pending[-1].end + ENDPOINT
        if self.received / self.rate < due or self._mid_word():
            return
        out.append(self._final(due, speech_final=True))

    def _mid_word(self) -> bool:
        piece = self.pieces[-1]
        position = piece.source + piece.length
        index = bisect_left(self.starts, position) - 1
        return index >= 0 and self.frames[index][1] > position

    def _final(
        self, end: float, *, speech_final: bool = False, from_finalize: bool = False
    ) -> Hypothesis:
        final = replace(
            self._hypothesis(end, is_final=True, speech_final=speech_final),
            from_finalize=from_finalize,
        )
        self.final_end = end
        self.pending = []
        return final

    def _hypothesis(self, end: float, *, is_final: bool, speech_final: bool = False) -> Hypothesis:
        return Hypothesis(
            is_final=is_final,
            start=self.final_end,
            duration=max(0.0, end - self.final_end),
            words=tuple(self.pending),
            speech_final=speech_final,
            confidence=0.99 if self.pending else 0.0,
        )


def _common_prefix(data: bytes, start: int, source: bytes, at: int) -> int:
    """How many bytes (whole samples) of ``data[start:]`` equal ``source[at:]``."""
    length = min(len(data) - start, len(source) - at)
    length -= length % 2
    if data[start : start + length] == source[at : at + length]:
        return length
    low, high = 0, length  # data[start:start+low] matches; at high it does not
    while high - low > 2:  # noqa: PLR2004 - one sample
        middle = (low + high) // 4 * 2
        if data[start : start + middle] == source[at : at + middle]:
            low = middle
        else:
            high = middle
    return low


def _find_aligned(source: bytes, probe: bytes) -> int:
    at = source.find(probe)
    while at > 0 and at % 2:
        at = source.find(probe, at + 1)
    return at
