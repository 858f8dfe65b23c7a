"""A connection's recognizer with Whisper finals and pocketsphinx interims.

pocketsphinx (in its worker process) still does what it is quick at: utterance boundaries
from its endpointer, interim results while someone speaks, ``SpeechStarted`` and
``UtteranceEnd``. Each of its finals covers a span of the stream (finals tile the time line),
and that span's audio, kept here, is decoded once by the shared Whisper model, whose words
replace pocketsphinx's. Outputs stay in order: a streaming feed that ends an utterance
returns after its Whisper final, so the client's audio waits in the socket meanwhile rather
than being lost. A prerecorded request (``pipelined``) lets pocketsphinx go on with the next
utterances while Whisper decodes, up to ``MAX_AHEAD`` finals; its close returns them all.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
from typing import Protocol

import numpy as np

from listend.dgproto.recognizer import (
    Hypothesis,
    Recognizer,
    RecognizerInfo,
    RecognizerOutput,
    StreamParams,
)
from listend.engine.audio import TARGET_RATE, PcmConverter
from listend.engine.formats import UnsupportedAudio
from listend.engine.vocabulary import parse_boosts
from listend.engine.whisper_model import Samples
from listend.engine.whisper_text import RawWord, TextStyle, to_words
from listend.engine.workers import PocketsphinxRecognizer, WorkerPool

MAX_AHEAD = 2  # pipelined: Whisper finals in flight before a feed waits for the oldest
KEEP_SECONDS = 40.0  # audio kept before the current span: longer than any utterance (15 s)
_BYTES_PER_SECOND = TARGET_RATE * 2
_ids = itertools.count(1)
Pending = asyncio.Task[Hypothesis] | RecognizerOutput


class FinalDecoder(Protocol):
    """What decodes an utterance for its final: the Whisper model, or a Wyoming server."""

    name: str
    version: str
    arch: str

    @property
    def description(self) -> str: ...

    async def start(self) -> None: ...

    def close(self) -> None: ...

    async def decode(self, samples: Samples, hotwords: str | None) -> list[RawWord]: ...


def whisper_info(model: FinalDecoder) -> RecognizerInfo:
    return RecognizerInfo(
        name=f"{model.arch}-{model.name}", version=model.version, arch=model.arch, kind="local"
    )


class WhisperRecognizer(Recognizer):
    def __init__(
        self,
        pool: WorkerPool,
        model: FinalDecoder,
        params: StreamParams,
        *,
        pipelined: bool = False,
    ) -> None:
        if not params.language.lower().startswith("en"):
            raise UnsupportedAudio(
                f"language {params.language!r}: the local engine only recognizes English (en)"
            )
        self._converter = PcmConverter(params.encoding, params.sample_rate, params.channels)
        self._model = model
        self.info = whisper_info(model)
        # The worker gets what we already converted: 16 kHz mono linear16.
        plain = dataclasses.replace(
            params, encoding="linear16", sample_rate=TARGET_RATE, channels=1
        )
        self._inner = PocketsphinxRecognizer(pool, plain)
        self._style = TextStyle(
            punctuate=params.punctuate or params.smart_format,
            numerals=params.numerals or params.smart_format,
        )
        boosts = parse_boosts(params.keywords, params.keyterm)
        phrases = [b.phrase for b in boosts if b.intensifier > 0]
        self._hotwords = " ".join(phrases) or None
        self._audio = bytearray()  # 16 kHz int16 from stream time self._origin on
        self._origin = 0.0
        self._pipelined = pipelined
        self._pending: collections.deque[Pending] = collections.deque()
        self._id = next(_ids)

    @property
    def warnings(self) -> list[str]:
        return []  # Whisper takes any phrase as a hotword

    async def open(self) -> None:
        await self._inner.open()

    async def feed(self, audio: bytes) -> list[RecognizerOutput]:
        pcm = self._converter.convert(audio)
        self._keep(pcm)
        return await self._replace_finals(await self._inner.feed(pcm), drain=not self._pipelined)

    async def finalize(self) -> list[RecognizerOutput]:
        return await self._replace_finals(await self._inner.finalize(), drain=True)

    async def close(self) -> list[RecognizerOutput]:
        pcm = self._converter.convert(b"", final=True)
        self._keep(pcm)
        outputs = await self._inner.feed(pcm) if pcm else []
        outputs += await self._inner.close()
        return await self._replace_finals(outputs, drain=True)

    async def aclose(self) -> None:
        decoding = [p for p in self._pending if isinstance(p, asyncio.Task)]
        self._pending.clear()
        for task in decoding:
            task.cancel()
        await asyncio.gather(*decoding, return_exceptions=True)
        await self._inner.aclose()

    def _keep(self, pcm: bytes) -> None:
        self._audio += pcm
        excess = len(self._audio) - int(KEEP_SECONDS * TARGET_RATE) * 2
        if excess > 0:
            del self._audio[:excess]
            self._origin += excess / _BYTES_PER_SECOND

    def _span(self, start: float, end: float) -> bytes:
        first = max(0, round((start - self._origin) * TARGET_RATE) * 2)
        last = max(first, round((end - self._origin) * TARGET_RATE) * 2)
        return bytes(self._audio[first:last])

    def _drop_until(self, end: float) -> None:
        cut = min(len(self._audio), max(0, round((end - self._origin) * TARGET_RATE) * 2))
        del self._audio[:cut]
        self._origin += cut / _BYTES_PER_SECOND

    async def _replace_finals(
        self, outputs: list[RecognizerOutput], *, drain: bool
    ) -> list[RecognizerOutput]:
        """Queue ``outputs`` (finals as Whisper decodes) and return the ready ones, in order."""
        for output in outputs:
            if isinstance(output, Hypothesis) and output.is_final:
                end = output.start + output.duration
                pcm = self._span(output.start, end)  # sliced now: later audio may push it out
                self._drop_until(end)
                self._pending.append(
                    asyncio.create_task(
                        self._whisper_final(output, pcm),
                        name=f"listend[whisper-final:{self._id}]",
                    )
                )
            else:
                self._pending.append(output)
        in_flight = [p for p in self._pending if isinstance(p, asyncio.Task)]
        for task in in_flight if drain else in_flight[: max(0, len(in_flight) - MAX_AHEAD)]:
            await task
        ready: list[RecognizerOutput] = []
        while self._pending:
            head = self._pending[0]
            if isinstance(head, asyncio.Task):
                if not head.done():
                    break
                ready.append(head.result())
            else:
                ready.append(head)
            self._pending.popleft()
        return ready

    async def _whisper_final(self, final: Hypothesis, pcm: bytes) -> Hypothesis:
        end = final.start + final.duration
        if not pcm:
            return dataclasses.replace(final, words=(), confidence=0.0)
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        raw = await self._model.decode(samples, self._hotwords)
        words = tuple(
            dataclasses.replace(w, end=min(w.end, round(end, 3)))
            for w in to_words(raw, final.start, self._style)
            if w.start < end
        )
        confidence = sum(w.confidence for w in words) / len(words) if words else 0.0
        return dataclasses.replace(final, words=words, confidence=round(confidence, 4))
