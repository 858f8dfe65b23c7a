"""A daemon serving Wyoming against the test server, and a client doing what Home Assistant does."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event

from listend.daemon.config.loader import load_config
from listend.daemon.plugin.manager import load_plugins
from listend.daemon.service.daemon import Daemon
from listend.daemon.service.local_engine import LocalEndpoint, LocalEngineFactory, no_local_engine
from listend.daemon.tasks import cancel_and_wait
from listend.testing import DeepgramTestServer
from tests.support.net import free_port
from tests.support.waiting import wait_until_async

RATE, WIDTH, CHANNELS = 16000, 2, 1
CHUNK = 2048  # bytes: 64 ms, about what Home Assistant sends


def wyoming_config(
    tmp_path: Path,
    dg: DeepgramTestServer,
    *,
    wyoming: str = "",
    deepgram: str = "",
    zeroconf: bool = False,
) -> Path:
    path = tmp_path / "listend.yaml"
    key = tmp_path / "deepgram.key"
    key.write_text(dg.api_key)
    path.write_text(f"""\
device: test-box
state_dir: {tmp_path / "state"}
deepgram:
  url: {dg.url}
  api_key: $file:{key}
  options: {{model: nova-3}}
{deepgram}wyoming:
  listen: 127.0.0.1:{free_port()}
  zeroconf: {str(zeroconf).lower()}
{wyoming}""")
    return path


def engine_at(server: DeepgramTestServer) -> LocalEngineFactory:
    """A "local engine" that is another test server, so fallback is checked word for word."""

    @dataclass
    class _Endpoint:
        url: str
        authorization: str | None

    @contextlib.asynccontextmanager
    async def factory(_config: object) -> AsyncIterator[LocalEndpoint | None]:
        yield _Endpoint(server.url, f"Token {server.api_key}" if server.api_keys else None)

    return factory


@contextlib.asynccontextmanager
async def wyoming_daemon(
    config: Path, *, local_engine: LocalEngineFactory = no_local_engine
) -> AsyncIterator[Daemon]:
    """The daemon running ``config`` until the block ends, its Wyoming server listening."""
    host = load_plugins()
    daemon = Daemon(load_config(config, host), host, local_engine=local_engine)
    run = asyncio.create_task(daemon.run(), name="test.daemon")
    try:

        def serving() -> bool:
            if run.done():
                run.result()  # it failed to start: say why
            return daemon.wyoming is not None and daemon.wyoming.serving.is_set()

        await wait_until_async(serving, what="the Wyoming server to listen")
        yield daemon
    finally:
        daemon.request_stop()
        done, _ = await asyncio.wait({run}, timeout=30)
        if not done:
            await cancel_and_wait(run)
            raise AssertionError("the daemon did not stop within 30s")
        run.result()


@dataclass
class Answer:
    """What came back for one request, in order."""

    events: list[Event] = field(default_factory=list)
    latency: float | None = None  # seconds from audio-stop sent to the transcript received

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]

    @property
    def text(self) -> str | None:
        for event in self.events:
            if Transcript.is_type(event.type):
                return Transcript.from_event(event).text
        return None

    @property
    def chunks(self) -> list[str]:
        return [
            TranscriptChunk.from_event(e).text
            for e in self.events
            if TranscriptChunk.is_type(e.type)
        ]

    @property
    def error(self) -> str | None:
        for event in self.events:
            if Error.is_type(event.type):
                return Error.from_event(event).text
        return None


async def send_audio(
    client: AsyncTcpClient, pcm: bytes, *, language: str | None = "en", realtime: bool = False
) -> None:
    """``transcribe``, ``audio-start`` and the chunks (paced like a microphone if ``realtime``)."""
    await client.write_event(Transcribe(language=language).event())
    await client.write_event(AudioStart(rate=RATE, width=WIDTH, channels=CHANNELS).event())
    started = time.perf_counter()
    for offset in range(0, len(pcm), CHUNK):
        piece = pcm[offset : offset + CHUNK]
        chunk = AudioChunk(rate=RATE, width=WIDTH, channels=CHANNELS, audio=piece)
        await client.write_event(chunk.event())
        if realtime:
            due = started + (offset + len(piece)) / (RATE * WIDTH * CHANNELS)
            await asyncio.sleep(max(0.0, due - time.perf_counter()))


async def read_answer(client: AsyncTcpClient, since: float | None = None) -> Answer:
    """Events until ``transcript-stop`` (or an error, or the server closing); the latency of
    the transcript is measured from ``since`` (a ``time.perf_counter()``)."""
    answer = Answer()
    while (event := await client.read_event()) is not None:
        answer.events.append(event)
        if since is not None and Transcript.is_type(event.type):
            answer.latency = time.perf_counter() - since
        if TranscriptStop.is_type(event.type) or Error.is_type(event.type):
            break
    return answer


async def transcribe(
    port: int, pcm: bytes, *, language: str | None = "en", realtime: bool = False
) -> Answer:
    """One request as Home Assistant makes it: transcribe, audio-start/chunks/stop, the answer."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await send_audio(client, pcm, language=language, realtime=realtime)
        await client.write_event(AudioStop().event())
        return await read_answer(client, since=time.perf_counter())
