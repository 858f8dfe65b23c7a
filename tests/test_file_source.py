"""The file source: WAV header or declared raw format, clear errors naming the file, pacing."""

from __future__ import annotations

import asyncio
import os
import random
from contextlib import aclosing
from pathlib import Path

import pytest

from listend.daemon.errors import ConfigError
from listend.daemon.plugin.source import AudioFormat, PluginContext
from listend.plugins import file_source
from listend.plugins.file_source import CachedReader, FileSource, FileSourceConfig, Pacer
from tests.support.audio import wav_bytes
from tests.support.cli import run_listend

CONTEXT = PluginContext(device="t", state_dir=Path("/nonexistent"))


def make(path: Path, **options: object) -> FileSource:
    config = FileSourceConfig.model_validate({"type": "file", "path": str(path), **options})
    return FileSource("hall", config, CONTEXT)


async def read_all(source: FileSource, limit: int | None = None) -> list[bytes]:
    chunks: list[bytes] = []
    async with asyncio.timeout(60), aclosing(source.stream()) as stream:
        async for chunk in stream:
            chunks.append(chunk)
            if limit is not None and sum(map(len, chunks)) >= limit:
                break
    return chunks


def test_wav_format_comes_from_its_header(tmp_path):
    audio = random.Random(1).randbytes(8000 * 4 // 2 * 2)  # 0.5 s of 8 kHz stereo
    path = tmp_path / "s.wav"
    path.write_bytes(wav_bytes(audio, channels=2, rate=8000))
    source = make(path, realtime=False, chunk_ms=100)
    assert source.audio_format == AudioFormat(8000, 2)
    chunks = asyncio.run(read_all(source))
    assert b"".join(chunks) == audio
    assert all(len(c) == 3200 for c in chunks[:-1])  # 100 ms of 8 kHz stereo 16-bit


def test_extensible_and_streamed_wavs_are_read(tmp_path):
    audio = random.Random(2).randbytes(3200)
    ext = tmp_path / "ext.wav"
    ext.write_bytes(wav_bytes(audio, tag=0xFFFE, subformat=1))
    streamed = tmp_path / "streamed.wav"  # size left at 0xFFFFFFFF by a writer on a pipe
    streamed.write_bytes(wav_bytes(audio, data_size=0xFFFFFFFF))
    for path in (ext, streamed):
        assert b"".join(asyncio.run(read_all(make(path, realtime=False)))) == audio


def test_raw_uses_the_declared_format(tmp_path):
    audio = random.Random(3).randbytes(48000 * 2 * 2 // 10)  # 0.1 s of 48 kHz stereo
    path = tmp_path / "a.raw"
    path.write_bytes(audio)
    source = make(path, format="raw", sample_rate=48000, channels=2, realtime=False, chunk_ms=20)
    assert source.audio_format == AudioFormat(48000, 2)
    chunks = asyncio.run(read_all(source))
    assert b"".join(chunks) == audio
    assert {len(c) for c in chunks} == {3840}


@pytest.mark.parametrize("nowait", [True, False], ids=["page-cache-on-loop", "thread-only"])
def test_cached_and_thread_reads_give_the_same_audio(tmp_path, monkeypatch, nowait):
    if not nowait:  # a platform or file system without RWF_NOWAIT: every block in the thread
        monkeypatch.setattr(file_source, "_RWF_NOWAIT", None)
    audio = random.Random(5).randbytes(8000 * 4 * 3 + 4 * 7)  # 3 s of 8 kHz stereo + 7 frames
    path = tmp_path / "s.wav"
    path.write_bytes(wav_bytes(audio, channels=2, rate=8000))
    chunks = asyncio.run(read_all(make(path, realtime=False, chunk_ms=30)))
    assert b"".join(chunks) == audio


@pytest.mark.skipif(file_source._RWF_NOWAIT is None, reason="no RWF_NOWAIT on this platform")
def test_cached_reader_reads_whole_frames_and_leaves_the_end_to_the_thread(tmp_path):
    path = tmp_path / "a.raw"
    path.write_bytes(bytes(range(10)))  # just written: in the page cache
    fd = os.open(path, os.O_RDONLY)
    try:
        reader = CachedReader(4)
        if reader.read(fd, 8, 0) is None and reader.flag is None:
            pytest.skip("this file system cannot read the page cache without waiting")
        assert reader.read(fd, 100, 1) == bytes(range(1, 9))  # 9 bytes there: 2 whole frames
        assert reader.read(fd, 100, 8) is None  # half a frame left: the thread's read decides
        assert reader.read(fd, 100, 10) is None  # the end
    finally:
        os.close(fd)


def test_loop_starts_again_at_the_end(tmp_path):
    audio = random.Random(4).randbytes(1000)
    path = tmp_path / "l.raw"
    path.write_bytes(audio)
    source = make(path, format="raw", loop=True, realtime=False)
    data = b"".join(asyncio.run(read_all(source, limit=3500)))
    assert data[:3000] == audio * 3


@pytest.mark.parametrize(
    ("name", "content", "options", "why"),
    [
        ("missing.wav", None, {}, "does not exist"),
        ("notes.wav", b"hello, I am text, not audio at all", {}, "is not a WAV file (no RIFF/WAVE"),
        ("8bit.wav", wav_bytes(b"\x80" * 100, bits=8), {}, "is 8-bit PCM WAV, not 16-bit"),
        ("float.wav", wav_bytes(b"\0" * 400, tag=3, bits=32), {}, "is 32-bit IEEE float WAV"),
        ("mulaw.wav", wav_bytes(b"\0" * 100, tag=7, bits=8), {}, "is µ-law WAV, not 16-bit PCM"),
        ("extfloat.wav", wav_bytes(b"\0" * 400, tag=0xFFFE, subformat=3, bits=32), {}, "float"),
        ("mp3.wav", wav_bytes(b"\0" * 100, tag=0x55), {}, "is MP3 WAV"),
        ("empty.wav", wav_bytes(b""), {}, "contains no audio"),
        ("cut.wav", wav_bytes(b"\0" * 100)[:30], {}, "is not a valid WAV file"),
        ("odd.raw", b"\0" * 1001, {"format": "raw"}, "is 1001 bytes, not a whole number of 2-byte"),
        ("stereo.raw", b"\0" * 1002, {"format": "raw", "channels": 2}, "4-byte frames"),
        ("empty.raw", b"", {"format": "raw"}, "contains no audio"),
        ("1hz.wav", wav_bytes(b"\0" * 100, rate=1), {}, "sample rate of 1 Hz is not supported"),
        ("huge.wav", wav_bytes(b"\0" * 100, rate=4294967280), {}, "4294967280 Hz is not"),
        ("many.wav", wav_bytes(b"\0" * 65534, channels=32767), {}, "32767 channels are not"),
    ],
)
def test_bad_files_are_named_with_the_reason(tmp_path, name, content, options, why):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        make(path, **options)
    assert str(info.value).startswith(f"source hall: {path} ")
    assert why in str(info.value)


def test_compressed_wav_error_says_how_to_convert(tmp_path):
    path = tmp_path / "float.wav"
    path.write_bytes(wav_bytes(b"\0" * 400, tag=3, bits=32))
    with pytest.raises(ConfigError, match=r"ffmpeg -i IN .* pcm_s16le OUT\.wav"):
        make(path)


def test_directories_and_fifos_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        make(tmp_path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=r"is not a regular file .*`command` source"):
        make(fifo, format="raw")


def file_config(write_config, tmp_path: Path, path: Path) -> Path:
    """A config with one file source reading ``path``."""
    return write_config(
        f"device: t\nstate_dir: {tmp_path}/state\n"
        f"sources:\n  hall:\n    type: file\n    path: {path}\n"
        "sinks:\n  out:\n    type: stdout\n"
    )


def test_validate_refuses_a_wav_that_claims_1_hz(write_config, tmp_path):
    """Such a header used to pass validate and then wedge the loop (0-byte chunks)."""
    path = tmp_path / "1hz.wav"
    path.write_bytes(wav_bytes(b"\0" * 1000, rate=1))
    result = run_listend("validate", str(file_config(write_config, tmp_path, path)))
    assert result.returncode == 78, result.stderr
    assert "a sample rate of 1 Hz is not supported (8000..192000 Hz)" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_file_stops_the_daemon_with_exit_78_and_no_traceback(write_config, tmp_path):
    eight_bit = tmp_path / "old.wav"
    eight_bit.write_bytes(wav_bytes(b"\x80" * 100, bits=8))
    for path, why in ((tmp_path / "gone.wav", "does not exist"), (eight_bit, "is 8-bit PCM")):
        config = file_config(write_config, tmp_path, path)
        result = run_listend("run", str(config))
        assert result.returncode == 78, result.stderr
        assert f"{config}:4:3: sources.hall: {path} {why}" in result.stderr
        assert "Traceback" not in result.stderr


def test_pacing_is_drift_free():
    """Deadlines count from the first chunk: time lost to overhead is caught up, not added."""
    now = [100.0]
    slept: list[float] = []

    async def slow_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds + 0.004  # every sleep oversleeps, as a busy machine does

    async def run() -> None:
        pacer = Pacer(AudioFormat(16000), clock=lambda: now[0], sleep=slow_sleep)
        for _ in range(100):
            await pacer.handed_on(3200)  # 100 ms each
            now[0] += 0.001  # work between chunks

    asyncio.run(run())
    assert now[0] - 100.0 == pytest.approx(10.005, abs=1e-6), "10 s of audio took 10 s"
    assert all(s < 0.1 for s in slept[1:]), "each sleep is shortened by the previous overrun"
