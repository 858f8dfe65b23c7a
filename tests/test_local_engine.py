"""The local engine through the real Deepgram SDK (streaming and REST) and `listend transcribe`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import struct
import subprocess
from typing import Any

import httpx
import pytest
from aiohttp import web
from deepgram.core.api_error import ApiError
from deepgram.listen.v1.types import (
    ListenV1Metadata,
    ListenV1Results,
    ListenV1SpeechStarted,
    ListenV1UtteranceEnd,
)

from listend.dgproto.server import serve
from tests.support.audio import wav_bytes
from tests.support.cli import run_listend
from tests.support.engine import (
    check_words,
    client_for,
    finals_with_words,
    silence,
    spaced,
    streaming,
)
from tests.support.evaluation import word_error_rate

pytestmark = pytest.mark.xdist_group("local-engine")

SENTENCES = (
    "the library closes at six on saturday",
    "what is the weather like today",
    "add eggs to the shopping list",
)
# Measured on these sentences (espeak-ng speech, deterministic): 0.32-0.37 from a warm engine; 0.47
# from a fresh `listend transcribe` process, whose decoder starts with the model's default
# cepstral mean. bench/RESULTS.md has the numbers on a larger set.
WER_BOUND = 0.45
COLD_WER_BOUND = 0.65
RATE = 16000


def test_streaming_through_the_sdk(local_engine, engine_loop, speech):
    clips = [speech(s) for s in SENTENCES]

    async def main() -> tuple[list[Any], list[tuple[float, float]]]:
        async with streaming(
            local_engine,
            interim_results=True,
            utterance_end_ms=1000,
            vad_events=True,
            endpointing=300,
            punctuate=True,
        ) as (sender, receiver):
            sock = sender.sock
            await sender.send(silence(0.5), is_speech=False)
            await sender.send(clips[0], is_speech=True)
            await sender.send(silence(1.5), is_speech=False)
            # Longer than the engine's idle timeout (3 s), kept open by KeepAlive alone.
            for _ in range(5):
                await asyncio.sleep(1.0)
                await sock.send_keep_alive()
            await sender.send(clips[1], is_speech=True)  # no trailing silence: in flight
            await sock.send_finalize()
            await sender.send(clips[2], is_speech=True)
            await sender.send(silence(1.5), is_speech=False)
            await sock.send_close_stream()
            received = await asyncio.wait_for(receiver, 60)
        return received, sender.spans

    received, spans = engine_loop.run(main())
    results = [m for m in received if isinstance(m, ListenV1Results)]
    finals = finals_with_words(received)
    texts = [m.channel.alternatives[0].transcript for m in finals]
    assert len(finals) == 3, texts
    assert word_error_rate(list(zip(SENTENCES, texts, strict=True))) <= WER_BOUND
    assert [m.from_finalize for m in finals] == [False, True, False]
    assert all(m.speech_final for m in finals)
    assert texts[0][0].isupper()  # punctuate: capitalised, full stop
    assert texts[0].endswith(".")
    check_words([w for m in finals for w in m.channel.alternatives[0].words], spans)
    assert any(not m.is_final for m in results)  # interims
    assert len([m for m in received if isinstance(m, ListenV1SpeechStarted)]) == 3
    assert [m for m in received if isinstance(m, ListenV1UtteranceEnd)]
    metadata = received[-1]
    assert isinstance(metadata, ListenV1Metadata)  # CloseStream: Metadata, then close
    total = 0.5 + sum(len(c) for c in clips) / 2 / RATE + 3.0
    assert metadata.duration == pytest.approx(total, abs=0.01)


def test_transcribe_file_and_url_through_the_sdk(local_engine, engine_loop, speech):
    pcm, spans = spaced([speech(s) for s in SENTENCES])
    audio = wav_bytes(pcm)

    async def talk(_request: web.Request) -> web.Response:
        return web.Response(body=audio)

    async def chunks():  # the way `listend transcribe` streams a large file
        for offset in range(0, len(audio), 7000):
            yield audio[offset : offset + 7000]

    async def main() -> tuple[Any, Any]:
        async with client_for(local_engine) as client:
            media = client.listen.v1.media
            from_file = await media.transcribe_file(
                request=chunks(), model="nova-3", utterances=True, smart_format=True
            )
            app = web.Application()
            app.router.add_get("/talk.wav", talk)
            local_engine.rest.allow_url = True  # off by default (see the test below)
            try:
                async with serve(app) as (host, port):
                    from_url = await media.transcribe_url(url=f"http://{host}:{port}/talk.wav")
            finally:
                local_engine.rest.allow_url = False
        return from_file, from_url

    from_file, from_url = engine_loop.run(main())
    alternative = from_file.results.channels[0].alternatives[0]
    assert word_error_rate([(" ".join(SENTENCES), alternative.transcript)]) <= WER_BOUND
    check_words(alternative.words, spans)
    assert len(from_file.results.utterances) == 3
    assert from_file.metadata.duration == pytest.approx(len(pcm) / 2 / RATE, abs=0.01)
    url_text = from_url.results.channels[0].alternatives[0].transcript
    assert word_error_rate([(" ".join(SENTENCES), url_text)]) <= WER_BOUND


def test_rest_refuses_what_it_cannot_do(local_engine, engine_loop):
    async def main() -> list[ApiError]:
        errors = []
        async with client_for(local_engine) as client:
            for request, options in (
                (b"not audio at all" * 50, {}),
                (wav_bytes(b""), {"language": "de"}),
            ):
                try:
                    await client.listen.v1.media.transcribe_file(request=request, **options)
                except ApiError as exc:
                    errors.append(exc)
        return errors

    errors = engine_loop.run(main())
    assert [e.status_code for e in errors] == [400, 400]
    assert "could not decode the audio" in errors[0].body["err_msg"]
    assert "only recognizes English" in errors[1].body["err_msg"]


def test_the_engine_requires_its_token_and_refuses_url_and_callback(local_engine, engine_loop):
    """Any local user can reach the port: only this process's token is accepted, and the
    engine neither fetches a URL nor posts a callback unless enabled."""

    async def main() -> list[tuple[int, str]]:
        answers = []
        listen = f"{local_engine.url}/v1/listen"
        audio = wav_bytes(silence(0.2))
        token = {"Authorization": local_engine.authorization}
        async with httpx.AsyncClient(timeout=30) as http:
            for method, headers, extra in (
                ("POST", {}, {"content": audio}),
                ("POST", {"Authorization": "Token any-key"}, {"content": audio}),
                ("POST", {"Authorization": "Bearer x"}, {"content": audio}),
                ("GET", {}, {}),  # the streaming handshake
                ("GET", {"Authorization": "Token any-key"}, {}),
                ("POST", token, {"json": {"url": "http://127.0.0.1:9/secret"}}),
                ("POST", token, {"content": audio, "params": {"callback": "http://127.0.0.1:9/"}}),
            ):
                response = await http.request(method, listen, headers=headers, **extra)
                answers.append((response.status_code, response.text))
        return answers

    answers = engine_loop.run(main())
    assert [status for status, _ in answers] == [401, 401, 401, 401, 401, 403, 403]
    assert "does not fetch URLs" in answers[5][1]
    assert "callbacks are not enabled" in answers[6][1]


def three_sentences(speech) -> bytes:
    pcm = silence(0.3)
    for sentence in SENTENCES:
        pcm += speech(sentence) + silence(1.2)
    return pcm


@pytest.fixture
def no_key_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DEEPGRAM_API_KEY"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_transcribe_command_with_callback(speech, tmp_path, no_key_env, receiver):
    """No key: the local engine, in-process. The id is printed; the receiver gets the result."""
    path = tmp_path / "talk.wav"
    path.write_bytes(wav_bytes(three_sentences(speech)))
    result = run_listend(
        "transcribe",
        str(path),
        "--callback",
        receiver.url,
        "--callback-method",
        "put",
        "--punctuate",
        env=no_key_env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    request_id = result.stdout.strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", request_id), result.stdout
    assert len(receiver.requests) == 1
    method, body = receiver.requests[0].method, receiver.requests[0].json()
    assert method == "PUT"
    assert body["metadata"]["request_id"] == request_id
    transcript = body["results"]["channels"][0]["alternatives"][0]["transcript"]
    assert word_error_rate([(" ".join(SENTENCES), transcript)]) <= COLD_WER_BOUND


def test_transcribe_command_writes_subtitles(speech, tmp_path, no_key_env):
    path = tmp_path / "talk.wav"
    pcm = silence(0.3) + speech(SENTENCES[0]) + silence(1.5) + speech(SENTENCES[1])
    path.write_bytes(wav_bytes(pcm + silence(1.0)))
    out = tmp_path / "talk.srt"
    result = run_listend(
        "transcribe", str(path), "--format", "srt", "-o", str(out), env=no_key_env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    blocks = out.read_text().strip().split("\n\n")
    assert len(blocks) == 2
    number, times, *_lines = blocks[0].splitlines()
    assert number == "1"
    assert re.fullmatch(r"00:00:00,\d{3} --> 00:00:0\d,\d{3}", times)
    missing = run_listend("transcribe", str(tmp_path / "nope.wav"), env=no_key_env)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"listend: {tmp_path / 'nope.wav'}: no such file"


def test_json_output_is_deepgrams(speech, tmp_path, no_key_env):
    path = tmp_path / "talk.wav"
    path.write_bytes(wav_bytes(speech(SENTENCES[2]) + silence(0.5)))
    result = run_listend("transcribe", "--local", str(path), "--format", "json", env=no_key_env)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["metadata"]["model_info"]
    assert body["results"]["channels"][0]["alternatives"][0]["words"]


def test_transcribe_on_a_directory_says_so(tmp_path, no_key_env):
    result = run_listend("transcribe", "--local", str(tmp_path), env=no_key_env)
    assert result.returncode == 1
    assert result.stderr.strip() == f"listend: {tmp_path} is a directory; give an audio file"


SOX_ENCODINGS = {
    "float32": ["-e", "floating-point", "-b", "32"],
    "unsigned8": ["-e", "unsigned-integer", "-b", "8"],
    "mulaw": ["-e", "mu-law", "-b", "8"],
    "alaw": ["-e", "a-law", "-b", "8"],
    "signed24": ["-e", "signed-integer", "-b", "24"],
    "signed32": ["-e", "signed-integer", "-b", "32"],
}


@pytest.fixture(scope="module")
def sox_wavs(speech, tmp_path_factory) -> dict[str, bytes]:
    """Three sentences as sox writes them in each encoding (some WAVE_FORMAT_EXTENSIBLE);
    without dither (-D), which is random: the audio is the same on every run."""
    folder = tmp_path_factory.mktemp("sox")
    base = folder / "base.wav"
    base.write_bytes(wav_bytes(three_sentences(speech)))
    made = {}
    for name, args in SOX_ENCODINGS.items():
        out = folder / f"{name}.wav"
        subprocess.run(["sox", "-D", str(base), *args, str(out)], check=True, timeout=60)
        made[name] = out.read_bytes()
    return made


@pytest.mark.parametrize("encoding", sorted(SOX_ENCODINGS))
def test_wavs_that_are_not_16_bit_pcm_are_transcribed(
    local_engine, engine_loop, sox_wavs, encoding
):
    async def main() -> httpx.Response:
        async with httpx.AsyncClient(timeout=120) as http:
            return await http.post(
                f"{local_engine.url}/v1/listen",
                content=sox_wavs[encoding],
                headers={"Authorization": local_engine.authorization},
            )

    response = engine_loop.run(main())
    assert response.status_code == 200, response.text
    transcript = response.json()["results"]["channels"][0]["alternatives"][0]["transcript"]
    assert word_error_rate([(" ".join(SENTENCES), transcript)]) <= COLD_WER_BOUND, transcript


def test_a_short_fmt_chunk_is_a_clear_400(local_engine, engine_loop):
    damaged = wav_bytes(silence(0.5))
    at = damaged.index(b"fmt ")
    damaged = (
        damaged[: at + 4] + struct.pack("<I", 6) + damaged[at + 8 : at + 14] + damaged[at + 24 :]
    )

    async def main() -> httpx.Response:
        async with httpx.AsyncClient(timeout=60) as http:
            return await http.post(
                f"{local_engine.url}/v1/listen",
                content=damaged,
                headers={"Authorization": local_engine.authorization},
            )

    response = engine_loop.run(main())
    assert response.status_code == 400, response.text
    assert "fmt chunk is 6 bytes, too short" in response.json()["err_msg"]


def test_transcribe_local_reads_a_mulaw_wav_made_by_sox(sox_wavs, tmp_path, no_key_env):
    path = tmp_path / "mulaw.wav"
    path.write_bytes(sox_wavs["mulaw"])
    result = run_listend("transcribe", "--local", str(path), env=no_key_env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert word_error_rate([(" ".join(SENTENCES), result.stdout)]) <= COLD_WER_BOUND, result.stdout
