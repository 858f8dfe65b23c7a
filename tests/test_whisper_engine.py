"""The Whisper engine (listend[whisper]) through the real SDK: streaming, REST, silence, and the
pinned model files. Whisper decodes cost ~0.6 s each: these tests make few of them."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from deepgram.listen.v1.types import ListenV1Metadata, ListenV1Results

from listend.engine.server import LocalEngine
from listend.engine.whisper_model import (
    BUNDLED_DIGESTS,
    ModelFileError,
    WhisperSettings,
    bundled_model_dir,
)
from tests.support.audio import wav_bytes
from tests.support.cli import run_listend
from tests.support.engine import (
    LoopThread,
    check_words,
    client_for,
    finals_with_words,
    silence,
    spaced,
    streaming,
)
from tests.support.evaluation import word_error_rate

pytest.importorskip("faster_whisper", reason="the whisper extra is not installed")
pytestmark = pytest.mark.xdist_group("whisper-engine")

SENTENCES = (
    "we need twenty three chairs for the party",
    "what is the weather like today",
    "add eggs to the shopping list",
)
# Measured on these sentences (espeak-ng speech, deterministic): 0.0 streaming (the first two),
# 0.16 REST ("chairs" -> "characters", "eggs to" -> "that into"); pocketsphinx scores 0.3-0.5
# on sentences like these (tests/test_local_engine.py), bench/RESULTS.md has a larger set.
WER_BOUND = 0.25
WORD_TIME_SLACK = 0.25  # Whisper's word times are ~0.15 s early or late (measured here)
RATE = 16000


@pytest.fixture(scope="module")
def whisper_engine(engine_loop: LoopThread) -> Iterator[LocalEngine]:
    engine = LocalEngine(workers=1, idle_timeout=5.0, whisper=WhisperSettings())
    engine_loop.run(engine.start())
    try:
        yield engine
    finally:
        engine_loop.run(engine.stop())


def test_streaming_finals_from_whisper_interims_from_pocketsphinx(
    whisper_engine, engine_loop, speech
):
    clips = [speech(s) for s in SENTENCES[:2]]

    async def main() -> tuple[list[Any], list[tuple[float, float]]]:
        async with streaming(
            whisper_engine, interim_results=True, endpointing=300, punctuate=True
        ) as (sender, receiver):
            sock = sender.sock
            await sender.send(silence(0.5), is_speech=False)
            await sender.send(clips[0], is_speech=True)
            await sender.send(silence(1.5), is_speech=False)
            await sender.send(clips[1], is_speech=True)  # no trailing silence: in flight
            await sock.send_finalize()
            await sender.send(silence(2.0), is_speech=False)  # silence: no words
            await sock.send_close_stream()
            received = await asyncio.wait_for(receiver, 60)
        return received, sender.spans

    received, spans = engine_loop.run(main())
    results = [m for m in received if isinstance(m, ListenV1Results)]
    finals = finals_with_words(received)
    texts = [m.channel.alternatives[0].transcript for m in finals]
    assert len(finals) == 2, texts
    assert word_error_rate(list(zip(SENTENCES[:2], texts, strict=True))) <= WER_BOUND, texts
    assert [m.from_finalize for m in finals] == [False, True]
    assert texts[0][0].isupper()  # punctuate: Whisper's capitals and punctuation
    words = [w for m in finals for w in m.channel.alternatives[0].words]
    check_words(words, spans, slack=WORD_TIME_SLACK)
    spoken = [w.word for w in words]
    assert spoken[2:4] == ["twenty", "three"]  # no numerals: spelled out, as Deepgram does
    assert all(w.confidence > 0 for w in words)
    assert any(not m.is_final and m.channel.alternatives[0].words for m in results)  # interims
    metadata = received[-1]
    assert isinstance(metadata, ListenV1Metadata)
    assert any(info["name"] == "whisper-tiny.en" for info in metadata.model_info.values())


def test_rest_transcribes_with_whisper_and_silence_gives_no_words(
    whisper_engine, engine_loop, speech
):
    pcm, spans = spaced([speech(s) for s in SENTENCES])

    async def main() -> tuple[Any, Any]:
        async with client_for(whisper_engine) as client:
            media = client.listen.v1.media
            talk = await media.transcribe_file(
                request=wav_bytes(pcm), model="nova-3", utterances=True, numerals=True
            )
            quiet = await media.transcribe_file(request=wav_bytes(silence(5.0)))
        return talk, quiet

    talk, quiet = engine_loop.run(main())
    alternative = talk.results.channels[0].alternatives[0]
    heard = alternative.transcript.replace("23", "twenty three")  # numerals=true: digits
    assert word_error_rate([(" ".join(SENTENCES), heard)]) <= WER_BOUND, alternative.transcript
    assert "23" in [w.word for w in alternative.words]
    check_words(alternative.words, spans, slack=WORD_TIME_SLACK)
    assert len(talk.results.utterances) == 3
    assert not getattr(talk.metadata, "warnings", None)  # numerals is supported here
    assert quiet.results.channels[0].alternatives[0].words == []
    model = whisper_engine.finals
    assert model is not None
    assert engine_loop.run(model.decode(np.zeros(RATE * 10, dtype=np.float32), None)) == []


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """The bundled model's files linked into a folder a test may break (no 75 MB copy)."""
    bundled = bundled_model_dir()
    assert bundled is not None
    copy = tmp_path / "model"
    copy.mkdir()
    for name in BUNDLED_DIGESTS:
        (copy / name).symlink_to(bundled / name)
    return copy


def test_a_tampered_or_missing_model_file_is_named_with_its_hash(model_copy, engine_loop):
    vocabulary = model_copy / "vocabulary.txt"
    text = vocabulary.read_text(encoding="utf-8")
    vocabulary.unlink()
    vocabulary.write_text(text.replace("the", "teh", 1), encoding="utf-8")
    engine = LocalEngine(
        workers=1, whisper=WhisperSettings(model_dir=model_copy, digests=BUNDLED_DIGESTS)
    )
    with pytest.raises(ModelFileError) as tampered:
        engine_loop.run(engine.start())
    assert str(vocabulary) in str(tampered.value)
    assert BUNDLED_DIGESTS["vocabulary.txt"] in str(tampered.value)
    assert engine.pool.workers == []  # nothing left running

    (model_copy / "model.bin").unlink()
    result = run_listend(
        "transcribe", "--local", "--engine-model", str(model_copy), str(vocabulary), timeout=60
    )
    assert result.returncode == 1
    message = f"Whisper model file {model_copy / 'model.bin'} is missing"
    assert message in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback


def test_a_copied_model_directory_loads(tmp_path, engine_loop, speech):
    """A user's own model (``local_engine.model``): here the bundled one, copied elsewhere."""
    bundled = bundled_model_dir()
    assert bundled is not None
    shutil.copytree(bundled, tmp_path / "tiny")
    engine = LocalEngine(workers=1, whisper=WhisperSettings(model_dir=tmp_path / "tiny"))
    engine_loop.run(engine.start())
    try:
        assert engine.finals is not None
        assert engine.description.startswith("whisper tiny ")
        pcm = speech(SENTENCES[1])
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
        words = engine_loop.run(engine.finals.decode(samples, None))
    finally:
        engine_loop.run(engine.stop())
    heard = " ".join(w.text for w in words)
    assert word_error_rate([(SENTENCES[1], heard)]) <= WER_BOUND


# Run listend as systemd's MemoryDenyWriteExecute=yes would (prctl PR_SET_MDWE, Linux >= 6.3).
_UNDER_MDWE = """
import ctypes, sys
if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:
    sys.exit(99)
from listend.cli import main
sys.argv[0] = "listend"
sys.exit(main())
"""


def test_where_whisper_cannot_decode_auto_falls_back_to_pocketsphinx(tmp_path, speech):
    """The shipped unit has MemoryDenyWriteExecute=yes, under which Whisper's kernels fail."""
    path = tmp_path / "talk.wav"
    path.write_bytes(wav_bytes(speech(SENTENCES[1]) + silence(0.5)))

    def transcribe(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", _UNDER_MDWE, "transcribe", "--local", *options, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    auto = transcribe()
    if auto.returncode == 99:
        pytest.skip("this kernel has no PR_SET_MDWE")
    assert auto.returncode == 0, auto.stderr
    assert "MemoryDenyWriteExecute=yes" in auto.stderr
    assert "using pocketsphinx" in auto.stderr
    assert auto.stdout.strip()  # pocketsphinx's words
    forced = transcribe("--engine", "whisper")
    assert forced.returncode == 1
    assert "set MemoryDenyWriteExecute=no for listend" in forced.stderr
    assert "Traceback" not in forced.stderr
