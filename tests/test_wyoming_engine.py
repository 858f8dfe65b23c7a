"""The Wyoming engine: pocketsphinx boundaries and interims, finals from a Wyoming
speech-to-text server (here one started by the test, answering scripted transcripts)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from listend.daemon.config.models import LocalEngineConfig
from listend.engine.server import LocalEngine
from listend.engine.workers import EngineError
from tests.support.audio import wav_bytes
from tests.support.engine import (
    LoopThread,
    client_for,
    finals_with_words,
    silence,
    spaced,
    streaming,
)
from tests.support.net import free_port

pytest.importorskip("wyoming", reason="the wyoming extra is not installed")

from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStop
from wyoming.event import Event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info
from wyoming.server import AsyncEventHandler, AsyncTcpServer

pytestmark = pytest.mark.xdist_group("local-engine")
RATE = 16000
ANSWERS = ["The library closes at 6 on Saturday.", "What is the weather like today?"]


@dataclass
class Scripted:
    """What the server heard (one entry per request) and answers, in order."""

    answers: list[str]
    received: list[bytes] = field(default_factory=list)


class Handler(AsyncEventHandler):
    def __init__(self, reader: Any, writer: Any, state: Scripted) -> None:
        super().__init__(reader, writer)
        self.state = state
        self.audio = bytearray()

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            about = Attribution(name="test", url="http://127.0.0.1/")
            model = AsrModel("test", about, installed=True, description=None, version="1",
                             languages=["en"])  # fmt: skip
            program = AsrProgram("test", about, True, None, "1", [model])
            await self.write_event(Info(asr=[program]).event())
        elif AudioChunk.is_type(event.type):
            self.audio += AudioChunk.from_event(event).audio
        elif AudioStop.is_type(event.type):
            self.state.received.append(bytes(self.audio))
            answer = self.state.answers[len(self.state.received) - 1]
            await self.write_event(Transcript(text=answer).event())
            return False
        return True


@pytest.fixture(scope="module")
def wyoming_engine(engine_loop: LoopThread) -> Iterator[tuple[LocalEngine, Scripted]]:
    state = Scripted(ANSWERS * 2)
    port = free_port()
    server = AsyncTcpServer("127.0.0.1", port)
    engine_loop.run(server.start(lambda r, w: Handler(r, w, state)))
    engine = LocalEngine(workers=1, idle_timeout=5.0, wyoming=f"tcp://127.0.0.1:{port}")
    engine_loop.run(engine.start())
    try:
        yield engine, state
    finally:
        engine_loop.run(engine.stop())
        engine_loop.run(server.stop())


def test_streaming_and_rest_finals_come_from_the_wyoming_server(
    wyoming_engine, engine_loop, speech
):
    engine, state = wyoming_engine
    clips = [speech("the library closes at six on saturday"), speech("what is the weather")]

    async def main() -> tuple[list[Any], Any]:
        async with streaming(engine, interim_results=True, endpointing=300, punctuate=True) as (
            sender,
            receiver,
        ):
            sock = sender.sock
            await sender.send(silence(0.5), is_speech=False)
            await sender.send(clips[0], is_speech=True)
            await sender.send(silence(1.5), is_speech=False)
            await sender.send(clips[1], is_speech=True)
            await sock.send_finalize()
            await sock.send_close_stream()
            received = await asyncio.wait_for(receiver, 60)
        pcm, _spans = spaced(clips)
        async with client_for(engine) as client:
            rest = await client.listen.v1.media.transcribe_file(request=wav_bytes(pcm))
        return received, rest

    received, rest = engine_loop.run(main())
    finals = finals_with_words(received)
    texts = [m.channel.alternatives[0].transcript for m in finals]
    assert texts == ["The library closes at six on Saturday.", "What is the weather like today?"]
    assert [m.from_finalize for m in finals] == [False, True]
    # The server heard each utterance whole (the clips' speech, give or take the silence).
    assert [len(a) >= len(c) * 0.8 for a, c in zip(state.received, clips, strict=False)] == [
        True,
        True,
    ]
    words = finals[0].channel.alternatives[0].words
    assert words[0].start >= 0.3
    assert words[-1].end <= 0.5 + len(clips[0]) / 2 / RATE + 0.5
    assert rest.results.channels[0].alternatives[0].transcript == (
        "the library closes at six on saturday what is the weather like today"
    )


def test_the_wyoming_engine_needs_a_reachable_server_and_an_address(engine_loop):
    engine = LocalEngine(workers=1, wyoming=f"tcp://127.0.0.1:{free_port()}")
    with pytest.raises(EngineError, match=r"wyoming server 127\.0\.0\.1:\d+"):
        engine_loop.run(engine.start())
    with pytest.raises(ValueError, match="together with engine: wyoming"):
        LocalEngineConfig(engine="wyoming")
