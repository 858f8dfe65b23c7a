"""The Wyoming server as Home Assistant uses it: the `wyoming` client library against a daemon
whose Deepgram is the test server (scripted speech, so transcripts are exact)."""

from __future__ import annotations

import asyncio
import re
import socket

import pytest
from wyoming.audio import AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

from listend.daemon.config.loader import load_config
from listend.daemon.errors import ListendError
from listend.daemon.plugin.manager import load_plugins
from listend.daemon.service.daemon import Daemon
from listend.testing import DeepgramTestServer, Script
from tests.support.waiting import async_test, wait_until_async
from tests.support.wyoming import (
    engine_at,
    read_answer,
    send_audio,
    transcribe,
    wyoming_config,
    wyoming_daemon,
)

COMMAND = "turn on the kitchen lights"


def speech(text: str) -> bytes:
    return Script().silence(0.3).say(text, then_silence=0.5).pcm()


@async_test
async def test_info_lists_an_installed_asr_program_with_streaming(tmp_path):
    async with (
        DeepgramTestServer() as dg,
        wyoming_daemon(wyoming_config(tmp_path, dg, wyoming="  languages: [en, de]\n")) as daemon,
        AsyncTcpClient("127.0.0.1", daemon.wyoming.port) as client,
    ):
        await client.write_event(Describe().event())
        event = await client.read_event()
    assert event is not None
    info = Info.from_event(event)
    [program] = info.asr
    assert program.name == "listend"
    assert program.installed
    assert program.supports_transcript_streaming
    [model] = program.models
    assert model.installed
    assert model.name == "nova-3"
    assert model.languages == ["en", "de"]


@async_test
async def test_a_request_gets_the_exact_transcript_with_streaming_events(tmp_path):
    async with DeepgramTestServer() as dg, wyoming_daemon(wyoming_config(tmp_path, dg)) as daemon:
        answer = await transcribe(daemon.wyoming.port, speech(COMMAND))
        [conn] = dg.connections
    assert answer.error is None, answer.error
    assert answer.text == COMMAND
    assert " ".join(answer.chunks) == COMMAND
    assert answer.types[0] == "transcript-start"
    assert answer.types[-2:] == ["transcript", "transcript-stop"]
    assert set(answer.types[1:-2]) == {"transcript-chunk"}
    assert "Finalize" in [c.type for c in conn.controls]  # at audio-stop
    assert ("language", "en") in conn.query
    assert conn.close_code == 1000


@async_test
async def test_many_concurrent_requests_each_get_their_own_transcript(tmp_path):
    scripts = [Script().generate(2.0, seed=n, words_per_utterance=4) for n in range(8)]
    async with DeepgramTestServer() as dg, wyoming_daemon(wyoming_config(tmp_path, dg)) as daemon:
        port = daemon.wyoming.port
        answers = await asyncio.gather(*(transcribe(port, s.pcm()) for s in scripts))
        assert daemon.wyoming.requests == {}
    assert [a.text for a in answers] == [" ".join(s.words) for s in scripts]


@async_test
async def test_a_deepgram_outage_without_fallback_fails_clearly_within_the_bound(tmp_path):
    async with (
        DeepgramTestServer() as dg,
        wyoming_daemon(wyoming_config(tmp_path, dg, wyoming="  answer_timeout: 2\n")) as daemon,
    ):
        dg.faults.drop(after_bytes=8000).refuse(1000)
        async with asyncio.timeout(60):  # a generous bound: the point is that it never hangs
            answer = await transcribe(daemon.wyoming.port, speech(COMMAND))
        assert daemon.wyoming.requests == {}
    assert answer.text is None
    assert answer.error is not None
    assert "no transcript within 2s" in answer.error


@async_test
async def test_a_deepgram_outage_falls_back_to_the_local_engine(tmp_path):
    async with (
        DeepgramTestServer() as dg,
        DeepgramTestServer(api_keys=()) as local,
        wyoming_daemon(
            wyoming_config(
                tmp_path, dg, wyoming="  fallback: local\n", deepgram="  fallback_after: 0.5\n"
            ),
            local_engine=engine_at(local),
        ) as daemon,
    ):
        dg.faults.drop(after_bytes=8000).refuse(1000)
        async with asyncio.timeout(60):
            answer = await transcribe(daemon.wyoming.port, speech(COMMAND))
    assert answer.error is None, answer.error
    assert answer.text == COMMAND  # replayed to the local engine: nothing lost
    assert local.connections


@async_test
async def test_a_client_leaving_mid_request_leaves_nothing_behind(tmp_path):
    async with DeepgramTestServer() as dg, wyoming_daemon(wyoming_config(tmp_path, dg)) as daemon:
        server = daemon.wyoming
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            await send_audio(client, speech(COMMAND)[:16000])
            await wait_until_async(lambda: dg.connections and dg.connections[0].bytes_received)
            assert len(server.requests) == 1
        await wait_until_async(lambda: not server.requests, what="the request to be dropped")
        await asyncio.wait_for(dg.connections[0].closed.wait(), 30)
        await wait_until_async(
            lambda: not [t for t in asyncio.all_tasks() if "wyoming:" in t.get_name()],
            what="the connection's tasks to end",
        )
        # and the server still serves the next client
        answer = await transcribe(server.port, speech(COMMAND))
    assert answer.text == COMMAND


@async_test
async def test_audio_stop_without_a_request_is_ignored_and_bad_audio_is_refused(tmp_path):
    async with DeepgramTestServer() as dg, wyoming_daemon(wyoming_config(tmp_path, dg)) as daemon:
        port = daemon.wyoming.port
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(AudioStop().event())
            await client.write_event(Describe().event())
            event = await client.read_event()
            assert event is not None
            assert event.type == "info"
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(AudioStart(rate=16000, width=1, channels=1).event())
            answer = await read_answer(client)
        assert answer.error is not None
        assert "unsupported audio" in answer.error
        assert not dg.connections  # nothing was sent, nothing billed


@async_test
async def test_a_port_in_use_is_a_clear_startup_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with DeepgramTestServer() as dg:
            config = wyoming_config(tmp_path, dg)
            config.write_text(
                re.sub(r"listen: 127\.0\.0\.1:\d+", f"listen: 127.0.0.1:{port}", config.read_text())
            )
            host = load_plugins()
            daemon = Daemon(load_config(config, host), host)
            with pytest.raises(BaseExceptionGroup) as caught:
                await asyncio.wait_for(daemon.run(), 30)
    assert caught.group_contains(ListendError, match=f"wyoming: cannot listen on 127.0.0.1:{port}")
