"""One stream's recognition state, run inside a worker process (blocking, GIL-holding code).

Audio -> :class:`PcmConverter` (16 kHz mono) -> pocketsphinx ``Endpointer`` (utterance
boundaries, 30 ms frames, output delayed by its window) -> ``Decoder``. Results follow
Deepgram's streaming semantics: interims from partial hypotheses, a final with
``speech_final`` when the endpointer ends an utterance, finals tiling the stream's time line,
``from_finalize`` on Finalize, ``UtteranceEnd`` after ``utterance_end_ms`` without words.
Times are seconds since the start of this stream's audio.

A decoder that has never heard speech has the model's default cepstral mean, which loses
many words of its first utterance; a prerecorded request on such a decoder (a fresh
``listend transcribe``: every file its first) decodes its first utterance a second time once
the mean has adapted to it. (Decoding every utterance whole, with its own mean, as
pocketsphinx alone does, was worse on the bench corpus: WER 0.85 against 0.70.)
"""

from __future__ import annotations

import re
from typing import Any

from listend.dgproto.recognizer import (
    Hypothesis,
    RecognizedWord,
    RecognizerOutput,
    SpeechStarted,
    StreamParams,
    UtteranceEnd,
)
from listend.engine.audio import TARGET_RATE, PcmConverter
from listend.engine.pool import PooledDecoder

FRAME_SECONDS = 0.03  # Endpointer frame: 0.01, 0.02 or 0.03 s
INTERIM_EVERY = 0.3  # seconds of decoded speech between partial hypotheses
MAX_UTTERANCE = 15.0  # force a (non speech_final) final in longer monologues
MIN_WINDOW, MAX_WINDOW = 0.3, 2.0  # shorter windows split words (measured); longer lag a lot
_SUFFIX = re.compile(r"\(\d+\)$")
_BYTES_PER_SECOND = TARGET_RATE * 2


def endpointer_window(endpointing_ms: int | None) -> float:
    """Deepgram's ``endpointing`` (ms of silence) as the Endpointer's window in seconds."""
    if endpointing_ms is None:
        return MIN_WINDOW
    return min(MAX_WINDOW, max(MIN_WINDOW, endpointing_ms / 1000))


def _is_filler(word: str) -> bool:
    return word.startswith(("<", "[", "+")) or not word


class StreamDecoder:
    def __init__(self, params: StreamParams, pooled: PooledDecoder) -> None:
        import pocketsphinx  # noqa: PLC0415 - worker processes only

        self.params = params
        self.pooled = pooled
        self._decoder: Any = pooled.decoder
        self._converter = PcmConverter(params.encoding, params.sample_rate, params.channels)
        self._window = endpointer_window(params.endpointing)
        self._endpointer_class: Any = pocketsphinx.Endpointer
        self._endpointer: Any = self._new_endpointer()
        self._frame_bytes: int = self._endpointer.frame_bytes
        self._origin = 0.0  # stream time at which the current endpointer started
        self._frames = 0  # frames given to the current endpointer
        self._pending = b""  # converted audio short of a whole frame
        self._segment_start = 0.0  # end of the last final: finals tile the time line
        self._in_utterance = False
        self._utt_start = 0.0
        self._utt_frames = 0
        self._interim_at = 0  # _utt_frames at the last partial hypothesis check
        self._interim_text = ""
        self._last_word_end: float | None = None
        self._utterance_end_due = False
        self._punctuate = params.punctuate or params.smart_format
        self._redo = params.prerecorded and not pooled.heard_speech  # see the module's doc
        self._utterance_audio = bytearray()  # _redo: the first utterance's speech

    def _new_endpointer(self) -> Any:
        return self._endpointer_class(window=self._window)

    # -- time -----------------------------------------------------------------------------

    @property
    def now(self) -> float:
        """Stream time of all audio received and converted so far."""
        return self._origin + self._frames * FRAME_SECONDS + len(self._pending) / _BYTES_PER_SECOND

    @property
    def _decoded_until(self) -> float:
        return self._utt_start + self._utt_frames * FRAME_SECONDS

    # -- the Recognizer calls ---------------------------------------------------------------

    def feed(self, audio: bytes) -> list[RecognizerOutput]:
        out: list[RecognizerOutput] = []
        self._push(self._converter.convert(audio), out)
        return out

    def finalize(self) -> list[RecognizerOutput]:
        """Flush everything received as one final with ``from_finalize``; go on listening."""
        out: list[RecognizerOutput] = []
        self._flush(out, from_finalize=True)
        return out

    def close(self) -> list[RecognizerOutput]:
        out: list[RecognizerOutput] = []
        self._push(self._converter.convert(b"", final=True), out)
        self._flush(out, from_finalize=False)
        if self._utterance_end_due and self._last_word_end is not None:
            out.append(UtteranceEnd(self._last_word_end))
            self._utterance_end_due = False
        return out

    def release(self) -> PooledDecoder:
        if self._in_utterance:
            self._decoder.end_utt()
            self._in_utterance = False
        return self.pooled

    # -- internals --------------------------------------------------------------------------

    def _push(self, pcm: bytes, out: list[RecognizerOutput]) -> None:
        data = self._pending + pcm
        size = self._frame_bytes
        whole = len(data) - len(data) % size
        for offset in range(0, whole, size):
            self._frame(data[offset : offset + size], out)
        self._pending = data[whole:]

    def _frame(self, frame: bytes, out: list[RecognizerOutput]) -> None:
        endpointer = self._endpointer
        was_speech = endpointer.in_speech
        speech = endpointer.process(frame)
        self._frames += 1
        if speech is None:
            self._maybe_utterance_end(out)
            return
        if not was_speech:
            self._start_utterance(self._origin + endpointer.speech_start, out)
        self._decode(speech)
        if not endpointer.in_speech:
            self._end_utterance(out, speech_final=self.params.endpointing is not None)
        elif self._utt_frames * FRAME_SECONDS >= MAX_UTTERANCE:
            self._end_utterance(out, speech_final=False)
            self._start_utterance(self._segment_start, out, announce=False)
        elif self.params.interim_results:
            self._maybe_interim(out)

    def _decode(self, speech: bytes) -> None:
        self._decoder.process_raw(speech)
        if self._redo:
            self._utterance_audio += speech
        self._utt_frames += len(speech) // self._frame_bytes

    def _start_utterance(
        self, start: float, out: list[RecognizerOutput], *, announce: bool = True
    ) -> None:
        self._decoder.start_utt()
        self._in_utterance = True
        self._utt_start = start
        self._utt_frames = 0
        self._interim_at = 0
        self._interim_text = ""
        self.pooled.heard_speech = True
        if announce and self.params.vad_events:
            out.append(SpeechStarted(round(start, 3)))

    def _maybe_interim(self, out: list[RecognizerOutput]) -> None:
        if (self._utt_frames - self._interim_at) * FRAME_SECONDS < INTERIM_EVERY:
            return
        self._interim_at = self._utt_frames
        hyp = self._decoder.hyp()
        text = hyp.hypstr if hyp is not None else ""
        if not text or text == self._interim_text:
            return
        self._interim_text = text
        # Partial segmentations carry no posteriors: interim confidences are not known (0).
        words = self._words(final=False)
        end = self._decoded_until
        out.append(self._hypothesis(words, end, is_final=False, confidence=0.0))

    def _end_utterance(
        self,
        out: list[RecognizerOutput],
        *,
        speech_final: bool,
        from_finalize: bool = False,
        end: float | None = None,
    ) -> None:
        self._decoder.end_utt()
        if self._redo:  # again, now that the cepstral mean has adapted to this voice
            self._redo = False
            self._decoder.start_utt()
            self._decoder.process_raw(bytes(self._utterance_audio))
            self._decoder.end_utt()
            self._utterance_audio = bytearray()
        self._in_utterance = False
        words = self._words(final=True, closes=speech_final or from_finalize)
        end = max(self._decoded_until if end is None else end, self._segment_start)
        if words or from_finalize or self._interim_text:
            confidence = sum(w.confidence for w in words) / len(words) if words else 0.0
            out.append(
                self._hypothesis(
                    words,
                    end,
                    is_final=True,
                    speech_final=speech_final,
                    from_finalize=from_finalize,
                    confidence=confidence,
                )
            )
        self._segment_start = end
        if words:
            self._last_word_end = words[-1].end
            self._utterance_end_due = self.params.utterance_end_ms is not None

    def _flush(self, out: list[RecognizerOutput], *, from_finalize: bool) -> None:
        """Decode what the endpointer still holds, end the utterance, restart the endpointer."""
        now = self.now
        was_speech = self._endpointer.in_speech
        # end_stream rejects an empty buffer; one silent sample is harmless.
        speech = self._endpointer.end_stream(self._pending or b"\x00\x00")
        if speech:
            if not was_speech:
                self._start_utterance(self._origin + self._endpointer.speech_start, out)
            self._decode(speech)
        if self._in_utterance:
            self._end_utterance(out, speech_final=True, from_finalize=from_finalize, end=now)
        elif from_finalize:
            out.append(self._hypothesis((), now, is_final=True, from_finalize=True))
        self._segment_start = max(self._segment_start, now)
        self._endpointer = self._new_endpointer()
        self._origin = now
        self._frames = 0
        self._pending = b""

    def _maybe_utterance_end(self, out: list[RecognizerOutput]) -> None:
        wait_ms = self.params.utterance_end_ms
        if not self._utterance_end_due or self._last_word_end is None or wait_ms is None:
            return
        # Audio inside the endpointer's window is not classified yet: wait for it.
        heard_until = self.now - self._window
        if heard_until - self._last_word_end >= wait_ms / 1000:
            out.append(UtteranceEnd(round(self._last_word_end, 3)))
            self._utterance_end_due = False

    def _hypothesis(
        self,
        words: tuple[RecognizedWord, ...],
        end: float,
        *,
        is_final: bool,
        speech_final: bool = False,
        from_finalize: bool = False,
        confidence: float = 0.0,
    ) -> Hypothesis:
        start = self._segment_start
        return Hypothesis(
            is_final=is_final,
            start=round(start, 3),
            duration=round(max(0.0, end - start), 3),
            words=words,
            speech_final=speech_final,
            from_finalize=from_finalize,
            confidence=round(confidence, 4),
        )

    def _words(self, *, final: bool, closes: bool = False) -> tuple[RecognizedWord, ...]:
        """The decoder's segmentation as words in stream time (aliases expanded)."""
        words: list[RecognizedWord] = []
        for item in self._decoder.seg() or ():
            token = _SUFFIX.sub("", item.word)
            if _is_filler(token):
                continue
            start = self._utt_start + item.start_frame / 100
            end = self._utt_start + (item.end_frame + 1) / 100
            confidence = min(1.0, max(0.0, float(item.prob))) if final else 0.0
            alias = self.pooled.tokens.get(token)
            if alias is None:
                words.append(RecognizedWord(token, start, end, confidence))
                continue
            # Spread the alias's span over its words by their length.
            total = sum(len(w) for w in alias.words)
            shown_as = alias.display if len(alias.display) == len(alias.words) else alias.words
            at = start
            for word, shown in zip(alias.words, shown_as, strict=True):
                until = at + (end - start) * len(word) / total
                words.append(RecognizedWord(word, at, until, confidence, shown))
                at = until
        return tuple(self._finish(words, closes=closes))

    def _finish(self, words: list[RecognizedWord], *, closes: bool) -> list[RecognizedWord]:
        """Round times; with punctuate/smart_format add the only punctuation we can know."""
        finished = []
        for index, word in enumerate(words):
            shown: str | None = None
            if self._punctuate:
                shown = word.punctuated_word or ("I" if word.word == "i" else word.word)
                if index == 0:
                    shown = shown[:1].upper() + shown[1:]
                if closes and index == len(words) - 1:
                    shown += "."
            finished.append(
                RecognizedWord(
                    word.word,
                    round(word.start, 3),
                    round(word.end, 3),
                    round(word.confidence, 4),
                    shown,
                )
            )
        return finished
