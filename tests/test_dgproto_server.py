"""The Deepgram-protocol test server, driven by the real deepgram-sdk async client."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from deepgram import AsyncDeepgramClient
from deepgram.core.api_error import ApiError
from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1.types import ListenV1Metadata, ListenV1Results
from websockets.exceptions import ConnectionClosedError

from listend.dgproto.recognizer import StreamParams
from listend.testing import DeepgramTestServer, Script, ScriptedRecognizer, records, running_server
from tests.support.net import free_port, wait_for_port


def client_for(dg: DeepgramTestServer) -> AsyncDeepgramClient:
    env = DeepgramClientEnvironment(
        base=dg.url, production=dg.ws_url, agent=dg.ws_url, agent_rest=dg.url
    )
    return AsyncDeepgramClient(api_key="unused", environment=env)


@asynccontextmanager
async def connect(dg: DeepgramTestServer, auth: str | None = None, **options: Any) -> AsyncIterator:
    options.setdefault("model", "nova-3")
    options.setdefault("encoding", "linear16")
    options.setdefault("sample_rate", 16000)
    client = client_for(dg)
    async with client.listen.v1.connect(
        authorization=auth or f"Token {dg.api_key}", **options
    ) as sock:
        yield sock


async def collect(sock) -> list[Any]:
    return [message async for message in sock]


def finals_text(messages: list[Any]) -> list[str]:
    return [
        m.channel.alternatives[0].transcript
        for m in messages
        if isinstance(m, ListenV1Results) and m.is_final and m.channel.alternatives[0].transcript
    ]


async def stream(sock, pcm: bytes, chunk: int = 3200) -> None:
    for offset in range(0, len(pcm), chunk):
        await sock.send_media(pcm[offset : offset + chunk])


def test_scripted_words_through_the_sdk():
    script = Script().say("turn on the kitchen lights").say("good night")

    async def main():
        async with DeepgramTestServer() as dg:
            async with connect(dg, interim_results=True, punctuate=True) as sock:
                receiver = asyncio.create_task(collect(sock))
                await stream(sock, script.pcm())
                await sock.send_keep_alive()
                await sock.send_finalize()
                await sock.send_close_stream()
                received = await receiver
            conn = dg.connections[0]
            await conn.closed.wait()
            return received, conn

    received, conn = asyncio.run(main())
    assert finals_text(received) == ["Turn on the kitchen lights.", "Good night."]
    interims = [m for m in received if isinstance(m, ListenV1Results) and not m.is_final]
    assert interims, "interim_results=true must produce interims"
    assert isinstance(received[-1], ListenV1Metadata)
    assert received[-1].request_id == conn.request_id
    assert received[-1].duration == pytest.approx(script.duration)
    assert conn.control_types == ["KeepAlive", "Finalize", "CloseStream"]
    assert conn.close_code == 1000
    assert bytes(conn.audio) == script.pcm()
    words = [
        w.word
        for m in received
        if isinstance(m, ListenV1Results) and m.is_final
        for w in m.channel.alternatives[0].words
    ]
    assert words == script.words
    first = next(m for m in received if isinstance(m, ListenV1Results) and m.is_final)
    assert first.channel.alternatives[0].words[0].start == pytest.approx(script.spans[0].start)
    assert first.speech_final is True


def test_finalize_answers_with_from_finalize_mid_utterance():
    script = Script().say("alpha bravo charlie", then_silence=0)

    async def main():
        async with DeepgramTestServer() as dg, connect(dg) as sock:
            await stream(sock, script.pcm())
            await sock.send_finalize()
            while True:
                message = await sock.recv()
                if isinstance(message, ListenV1Results) and message.from_finalize:
                    return message

    message = asyncio.run(main())
    assert message.is_final
    assert message.channel.alternatives[0].transcript == "alpha bravo charlie"


def test_any_chunking_decodes_the_same_words():
    script = Script(sample_rate=8000).generate(20, seed=3)
    pcm = script.pcm()

    async def decode(chunk: int) -> list[str]:
        recognizer = ScriptedRecognizer(StreamParams(sample_rate=8000))
        outputs = []
        for offset in range(0, len(pcm), chunk):
            outputs += await recognizer.feed(pcm[offset : offset + chunk])
        outputs += await recognizer.close()
        return [w.word for o in outputs if getattr(o, "is_final", False) for w in o.words]

    for chunk in (1, 333, 1600, 7777, len(pcm)):
        assert asyncio.run(decode(chunk)) == script.words, chunk


def test_wrong_key_is_401_with_dg_error_and_request_id():
    async def main():
        async with DeepgramTestServer() as dg:
            with pytest.raises(ApiError) as caught:
                async with connect(dg, auth="Token wrong"):
                    pass
            return caught.value, dg.refusals

    error, refusals = asyncio.run(main())
    assert error.status_code == 401
    headers = error.__context__.headers
    assert headers["dg-error"] == "Invalid credentials."
    assert headers["dg-request-id"] == refusals[0].request_id
    assert refusals[0].err_code == "INVALID_AUTH"


def test_bearer_tokens_and_token_keys_are_not_interchangeable():
    async def main():
        async with DeepgramTestServer(access_tokens=["temp-token"]) as dg:
            async with connect(dg, auth="Bearer temp-token") as sock:
                await sock.send_close_stream()
                await collect(sock)
            with pytest.raises(ApiError):
                async with connect(dg, auth="Bearer " + dg.api_key):
                    pass
            with pytest.raises(ApiError):
                async with connect(dg, auth="Token temp-token"):
                    pass
            return dg.connections[0].authorization

    assert asyncio.run(main()) == "Bearer temp-token"


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"encoding": "wav49"}, "encoding"),
        ({"interim_results": "maybe"}, "interim_results"),
        ({"utterance_end_ms": 300}, "utterance_end_ms"),
        ({"sample_rate": "fast"}, "sample_rate"),
        ({"encoding": "mulaw", "sample_rate": 8000}, "linear16"),
    ],
)
def test_bad_params_are_400_with_the_reason(options, problem):
    async def main():
        async with DeepgramTestServer() as dg:
            with pytest.raises(ApiError) as caught:
                async with connect(dg, **options):
                    pass
            return caught.value

    error = asyncio.run(main())
    assert error.status_code == 400
    assert problem in error.__context__.headers["dg-error"]


def test_idle_stream_is_closed_1011_net0001_unless_kept_alive():
    async def main():
        # KeepAlives every 0.5 s hold a 1.5 s idle timeout open for 2 s (slack for a loaded
        # machine: a late KeepAlive may come a second after its time and still count).
        async with DeepgramTestServer(idle_timeout=1.5) as dg:
            async with connect(dg) as sock:
                for _ in range(4):
                    await asyncio.sleep(0.5)
                    await sock.send_keep_alive()
                with pytest.raises(ConnectionClosedError) as caught:
                    await collect(sock)
            return caught.value, dg.connections[0]

    error, conn = asyncio.run(main())
    assert error.rcvd.code == 1011
    assert "net0001" in error.rcvd.reason
    assert conn.control_types == ["KeepAlive"] * 4


def test_planned_faults_in_order():
    async def main():
        async with DeepgramTestServer() as dg:
            dg.faults.drop(after_bytes=6400, code=1006).refuse(2, status=503, retry_after=1)
            dg.faults.drop(after_seconds=0.2, code=1012, reason="restarting")
            codes = []
            async with connect(dg) as sock:
                await sock.send_media(b"\0" * 6400)
                with pytest.raises(ConnectionClosedError) as caught:
                    await collect(sock)
                codes.append(caught.value.rcvd)
            for _ in range(2):
                with pytest.raises(ApiError) as refused:
                    async with connect(dg):
                        pass
                codes.append(refused.value.status_code)
                assert refused.value.__context__.headers["retry-after"] == "1"
            async with connect(dg) as sock:
                with pytest.raises(ConnectionClosedError) as caught:
                    await collect(sock)
                codes.append(caught.value.rcvd.code)
            return codes, dg.connections

    codes, connections = asyncio.run(main())
    assert codes == [None, 503, 503, 1012]  # None: no close frame (1006)
    assert [c.close_code for c in connections] == [1006, 1012]


def test_stall_then_carry_on():
    script = Script().say("slow network ahead")

    async def main():
        async with DeepgramTestServer() as dg:
            dg.faults.stall(after_bytes=3200, seconds=0.5)
            async with connect(dg) as sock:
                receiver = asyncio.create_task(collect(sock))
                await stream(sock, script.pcm())
                await sock.send_close_stream()
                return finals_text(await receiver)

    assert asyncio.run(main()) == ["slow network ahead"]


def test_every_response_has_a_request_id():
    with running_server() as dg:
        for path in ("/v1/listen", "/nowhere"):
            request = urllib.request.Request(dg.url + path)
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(request, timeout=10)
            with caught.value as response:
                assert response.headers["dg-request-id"]
                if path == "/v1/listen":
                    assert json.loads(response.read())["err_code"] == "INVALID_AUTH"


def test_standalone_server_and_script_writer(tmp_path):
    wav = tmp_path / "speech.wav"
    made = subprocess.run(
        [sys.executable, "-m", "listend.testing", "script", str(wav), "--say", "hello there"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "2 words" in made.stdout
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "listend.testing", "serve", "--port", str(port), "--open"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, timeout=30)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/listen", timeout=10)
        caught.value.close()
        assert caught.value.code == 400  # open server: no auth, but not a WebSocket upgrade
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert f"127.0.0.1:{port}" in out


def test_records_stay_bounded_on_a_long_connection(monkeypatch):
    monkeypatch.setattr(records, "MAX_AUDIO", 6400)
    monkeypatch.setattr(records, "MAX_MESSAGES", 3)
    pcm = Script().say("turn on the kitchen lights").say("good night", then_silence=1.0).pcm()

    async def main():
        async with DeepgramTestServer() as dg:
            async with connect(dg, interim_results=True) as sock:
                receiver = asyncio.create_task(collect(sock))
                await stream(sock, pcm)
                for _ in range(5):
                    await sock.send_keep_alive()
                await sock.send_close_stream()
                await receiver
            conn = dg.connections[0]
            await conn.closed.wait()
            return conn

    conn = asyncio.run(main())
    assert conn.bytes_received == len(pcm)  # the count goes on ...
    assert bytes(conn.audio) == pcm[:6400]  # ... the copy stops at the cap
    assert conn.control_types == ["KeepAlive", "KeepAlive", "CloseStream"]  # the latest three
    assert len(conn.sent) == 3
    assert conn.sent[-1]["type"] == "Metadata"
