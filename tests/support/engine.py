"""The local engine fixtures' machinery (one warm engine per test module) and an SDK client."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

import httpx
from deepgram import AsyncDeepgramClient
from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1.types import ListenV1Results

from listend.dgproto.recognizer import StreamParams
from listend.engine.server import LocalEngine
from listend.engine.workers import PocketsphinxRecognizer, WorkerPool

T = TypeVar("T")
RATE = 16000
CHUNK = 3200  # 100 ms


def silence(seconds: float) -> bytes:
    return b"\x00\x00" * int(RATE * seconds)


@contextlib.asynccontextmanager
async def client_for(engine: LocalEngine) -> AsyncIterator[AsyncDeepgramClient]:
    """The real SDK pointed at a local engine, with the token it requires."""
    url = engine.url
    ws = url.replace("http://", "ws://")
    env = DeepgramClientEnvironment(base=url, production=ws, agent=ws, agent_rest=url)
    async with httpx.AsyncClient(timeout=60) as http:
        yield AsyncDeepgramClient(api_key=engine.token, environment=env, httpx_client=http)


class Sender:
    """Sends PCM over an SDK socket in 100 ms chunks, noting where the speech was (seconds)."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.sent = 0
        self.spans: list[tuple[float, float]] = []

    async def send(self, pcm: bytes, *, is_speech: bool) -> None:
        if is_speech:
            self.spans.append((self.sent / 2 / RATE, (self.sent + len(pcm)) / 2 / RATE))
        for offset in range(0, len(pcm), CHUNK):
            await self.sock.send_media(pcm[offset : offset + CHUNK])
        self.sent += len(pcm)


def spaced(clips: list[bytes], *, lead: float = 0.3, gap: float = 1.2) -> tuple[bytes, list]:
    """``clips`` with silence before and between; (pcm, where each clip is in seconds)."""
    pcm = silence(lead)
    spans = []
    for clip in clips:
        start = len(pcm) / 2 / RATE
        pcm += clip
        spans.append((start, len(pcm) / 2 / RATE))
        pcm += silence(gap)
    return pcm, spans


@contextlib.asynccontextmanager
async def streaming(
    engine: LocalEngine, **options: Any
) -> AsyncIterator[tuple[Sender, asyncio.Task[Any]]]:
    """A linear16 16 kHz SDK stream to ``engine``: its :class:`Sender` and the task collecting
    every message the server sends (it ends when the server closes)."""
    async with (
        client_for(engine) as client,
        client.listen.v1.connect(
            model="nova-3", encoding="linear16", sample_rate=RATE, **options
        ) as sock,
    ):
        yield Sender(sock), asyncio.create_task(collect(sock))


async def collect(sock: Any) -> list[Any]:
    return [message async for message in sock]


def finals_with_words(received: list[Any]) -> list[ListenV1Results]:
    """The final results with words among what a stream received, in order."""
    return [
        m
        for m in received
        if isinstance(m, ListenV1Results) and m.is_final and m.channel.alternatives[0].words
    ]


def check_words(words: list[Any], spans: list[tuple[float, float]], slack: float = 0.15) -> None:
    """Word times are ordered, inside the audio that holds speech (give or take ``slack``
    seconds), with sane confidences."""
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    for word in words:
        assert word.start < word.end
        assert 0.0 <= word.confidence <= 1.0
        assert any(a - slack <= word.start and word.end <= b + slack for a, b in spans)


class LoopThread:
    """An event loop in a thread, so one warm engine can serve every test of a module."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


async def warm_up(pool: WorkerPool, speech: Callable[[str], bytes]) -> None:
    """Let the decoders' cepstral mean adapt to (generated) speech, as one utterance would."""
    for _ in range(pool.size):
        recognizer = PocketsphinxRecognizer(pool, StreamParams())
        await recognizer.feed(speech("this sentence warms up the decoder") + b"\0\0" * 16000)
        await recognizer.close()
