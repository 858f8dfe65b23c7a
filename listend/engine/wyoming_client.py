"""Finals from a Wyoming speech-to-text server on the LAN (Home Assistant's protocol, e.g.
wyoming-faster-whisper on port 10300) in place of the embedded Whisper model.

pocketsphinx still gives boundaries and interims; each utterance's audio is one Wyoming
``transcribe`` request (a connection of its own: servers handle one request per connection
well). Wyoming answers text only, so word times are spread by length over the stretch that is louder
than ``SPEECH_LEVEL``, and confidences are unknown (0).
"""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np

from listend.engine.audio import TARGET_RATE
from listend.engine.whisper_model import Samples
from listend.engine.whisper_text import RawWord
from listend.engine.workers import EngineError

if TYPE_CHECKING:
    from wyoming.client import AsyncTcpClient

log = logging.getLogger(__name__)

CHUNK_SAMPLES = 1024
SPEECH_LEVEL = 0.01  # -40 dBFS: where the utterance's speech starts and ends
TIMEOUT = 60.0  # seconds for one utterance's answer (a Pi running Whisper small is slow)


def _address(uri: str) -> tuple[str, int]:
    parts = urlsplit(uri if "://" in uri else f"tcp://{uri}")
    if parts.scheme != "tcp" or not parts.hostname:
        raise EngineError(f"wyoming: expected tcp://HOST:PORT, found {uri!r}")
    return parts.hostname, parts.port or 10300


class WyomingDecoder:
    """The finals decoder of a Wyoming-backed engine (same calls as the Whisper model)."""

    arch = "wyoming"

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.host, self.port = _address(uri)
        self.name = f"{self.host}:{self.port}"
        try:
            self.version = version("wyoming")
        except PackageNotFoundError:
            self.version = "unknown"

    @property
    def description(self) -> str:
        return f"Wyoming server {self.name}, pocketsphinx interims"

    async def start(self) -> None:
        """Check that the server answers ``describe`` and offers speech-to-text."""
        from wyoming.info import Describe, Info  # noqa: PLC0415 - the optional extra

        try:
            async with asyncio.timeout(10), self._client() as client:
                await client.write_event(Describe().event())
                while (event := await client.read_event()) is not None:
                    if Info.is_type(event.type):
                        if not Info.from_event(event).asr:
                            raise EngineError(f"wyoming server {self.name} offers no ASR")
                        return
        except (OSError, TimeoutError) as exc:
            raise EngineError(f"wyoming server {self.name}: {exc or type(exc).__name__}") from exc
        raise EngineError(f"wyoming server {self.name} closed without describing itself")

    def close(self) -> None:
        """Nothing is kept open between utterances."""

    def _client(self) -> AsyncTcpClient:
        try:
            from wyoming.client import AsyncTcpClient  # noqa: PLC0415
        except ImportError as exc:
            raise EngineError(f"the wyoming engine needs listend[wyoming]: {exc}") from exc
        return AsyncTcpClient(self.host, self.port)

    async def decode(self, samples: Samples, hotwords: str | None) -> list[RawWord]:
        from wyoming.asr import Transcribe, Transcript  # noqa: PLC0415
        from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: PLC0415

        del hotwords  # Wyoming's transcribe has no vocabulary hints
        pcm = np.clip(np.rint(samples * 32768.0), -32768, 32767).astype("<i2").tobytes()
        audio = {"rate": TARGET_RATE, "width": 2, "channels": 1}
        try:
            async with asyncio.timeout(TIMEOUT), self._client() as client:
                await client.write_event(Transcribe(language="en").event())
                await client.write_event(AudioStart(**audio).event())
                step = CHUNK_SAMPLES * 2
                for offset in range(0, len(pcm), step):
                    chunk = AudioChunk(audio=pcm[offset : offset + step], **audio)
                    await client.write_event(chunk.event())
                await client.write_event(AudioStop().event())
                while (event := await client.read_event()) is not None:
                    if Transcript.is_type(event.type):
                        text = Transcript.from_event(event).text
                        return _spread(text, samples)
        except (OSError, TimeoutError) as exc:
            raise EngineError(f"wyoming server {self.name}: {exc or type(exc).__name__}") from exc
        raise EngineError(f"wyoming server {self.name} closed without a transcript")


def _spread(text: str, samples: Samples) -> list[RawWord]:
    """Text without times: its words over the loud part of the utterance, by their length."""
    loud = np.flatnonzero(np.abs(samples) > SPEECH_LEVEL)
    first, last = (int(loud[0]), int(loud[-1]) + 1) if loud.size else (0, len(samples))
    seconds = (last - first) / TARGET_RATE
    tokens = text.split()
    total = sum(len(t) for t in tokens) or 1
    words, at = [], first / TARGET_RATE
    for token in tokens:
        until = at + seconds * len(token) / total
        words.append(RawWord(f" {token}", round(at, 3), round(until, 3), 0.0))
        at = until
    return words
