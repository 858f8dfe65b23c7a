"""The ``file`` source: a WAV or raw PCM file, paced in real time like a live source.

Every problem with the file (missing, unreadable, not WAV, 8-bit or compressed, a raw size
that is not whole frames, no audio) is a :class:`ConfigError` naming the file and saying why,
raised when the source is built, i.e. at daemon start. Long files are read a block at a time,
so they never sit in memory; a block the page cache holds is read on the loop (a thread hop
per block costs more CPU than the read), any other in a thread, so a slow disk never blocks it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, BinaryIO, Literal

from pydantic import Field

from listend.api import (
    AudioFormat,
    ConfigError,
    ConfigPath,
    ListendError,
    PluginContext,
    Source,
    SourceConfig,
)
from listend.plugins.wav import WavError, read_wav_info

log = logging.getLogger(__name__)

READ_BLOCK_CHUNKS = 10  # chunks read at a time
#: Linux: a read that returns only what the page cache holds, never waiting for the disk.
_RWF_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)
_NOWAIT_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS})


_MAGIC = (
    (b"ID3", "an MP3 file"),
    (b"OggS", "an Ogg file"),
    (b"fLaC", "a FLAC file"),
    (b"\x1aE\xdf\xa3", "a Matroska/WebM file"),
)
_FRAME_SYNC = 0xFFE0  # the 11 set bits an MPEG audio frame starts with
_SUFFIXES = {
    ".mp3": "an MP3 file",
    ".m4a": "an AAC/MP4 file",
    ".mp4": "an MP4 file",
    ".aac": "an AAC file",
    ".ogg": "an Ogg file",
    ".opus": "an Opus file",
    ".flac": "a FLAC file",
    ".webm": "a WebM file",
    ".mkv": "a Matroska file",
}


def compressed_container(head: bytes, suffix: str) -> str | None:
    """What compressed format a non-WAV file is (by its first bytes, else its name), if any."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[4:8] == b"ftyp":
        return "an MP4/M4A file"
    if head[:2] and int.from_bytes(head[:2]) & _FRAME_SYNC == _FRAME_SYNC:
        return "an MP3/AAC stream"
    return _SUFFIXES.get(suffix.lower())


class FileSourceConfig(SourceConfig):
    path: ConfigPath = Field(
        description="WAV file, or raw PCM with `format: raw`; relative: to the config file"
    )
    format: Literal["wav", "raw"] = Field(default="wav", description="wav reads its header")
    sample_rate: int = Field(default=16000, ge=8000, le=192000, description="raw only")
    channels: int = Field(default=1, ge=1, le=32, description="raw only")
    realtime: bool = Field(default=True, description="pace like a live source; false: fast")
    loop: bool = Field(default=False, description="start again at the end (demos)")
    chunk_ms: int = Field(default=100, ge=10, le=1000)


class Pacer:
    """Holds audio back to the rate it plays at, each deadline counted from the first chunk.

    Deadlines come from the total handed on so far, never from "now + chunk length", so time
    spent elsewhere (a slow consumer, a busy CPU) is caught up instead of accumulating drift.
    """

    def __init__(
        self,
        audio_format: AudioFormat,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._format = audio_format
        self._clock = clock
        self._sleep = sleep
        self._started: float | None = None
        self._bytes = 0

    async def handed_on(self, nbytes: int) -> None:
        """Record ``nbytes`` more audio and sleep until it has had time to play."""
        if self._started is None:
            self._started = self._clock()
        self._bytes += nbytes
        delay = self._started + self._format.seconds(self._bytes) - self._clock()
        if delay > 0:
            await self._sleep(delay)


class FileSource(Source):
    type_name = "file"
    config_model = FileSourceConfig
    config: FileSourceConfig

    def __init__(self, name: str, config: Any, context: PluginContext) -> None:
        super().__init__(name, config, context)
        self.realtime = self.config.realtime  # not live: the session may pause reading
        self._format, self._data_offset, self._data_size = self._probe()

    def _error(self, why: str) -> ConfigError:
        return ConfigError(f"source {self.name}: {self.config.path} {why}")

    def _probe(self) -> tuple[AudioFormat, int, int]:
        """Check the file now, so a bad file stops the daemon at start with a clear message."""
        cfg = self.config
        try:
            mode = cfg.path.stat().st_mode
            if stat.S_ISDIR(mode):
                raise self._error("is a directory")
            if not stat.S_ISREG(mode):
                msg = "is not a regular file (for a pipe or device use a `command` source)"
                raise self._error(msg)
            with cfg.path.open("rb") as file:
                size = cfg.path.stat().st_size
                audio_format, offset, data_size = self._read_header(file, size)
        except FileNotFoundError:
            raise self._error("does not exist") from None
        except OSError as exc:
            raise self._error(f"cannot be read: {exc.strerror or exc}") from None
        if data_size == 0:
            raise self._error("contains no audio")
        return audio_format, offset, data_size

    def _read_header(self, file: BinaryIO, size: int) -> tuple[AudioFormat, int, int]:
        cfg = self.config
        if cfg.format == "raw":
            audio_format = AudioFormat(cfg.sample_rate, cfg.channels)
            frame = audio_format.bytes_per_frame
            if size % frame:
                msg = f"is {size} bytes, not a whole number of {frame}-byte frames "
                msg += f"(16-bit, {cfg.channels} channels): wrong `channels`, or not raw PCM?"
                raise self._error(msg)
            return audio_format, 0, size
        try:
            info = read_wav_info(file, size)
        except WavError as exc:
            file.seek(0)
            container = compressed_container(file.read(12), cfg.path.suffix)
            if container is None:
                raise self._error(str(exc)) from None
            raise self._error(
                f"is {container}, not WAV: decode it with a `command` source, e.g. command: "
                f"[ffmpeg, -nostdin, -loglevel, error, -re, -i, {cfg.path}, -f, s16le, -ac, 1, "
                "-ar, 16000, '-'] (or convert it once: ffmpeg -i IN -ac 1 -ar 16000 OUT.wav)"
            ) from None
        audio_format = AudioFormat(info.sample_rate, info.channels)
        if (problem := audio_format.problem()) is not None:
            raise self._error(f"has a WAV header that cannot be right: {problem}")
        return audio_format, info.data_offset, info.data_size

    @property
    def audio_format(self) -> AudioFormat:
        return self._format

    async def stream(self) -> AsyncIterator[bytes]:
        cfg = self.config
        chunk = self._format.bytes_per_second * cfg.chunk_ms // 1000
        chunk = max(chunk - chunk % self._format.bytes_per_frame, self._format.bytes_per_frame)
        pacer = Pacer(self._format) if cfg.realtime else None
        file = await self._in_thread(cfg.path.open, "rb")
        try:
            while True:
                sent = 0
                async for block in self._blocks(file, chunk * READ_BLOCK_CHUNKS):
                    for offset in range(0, len(block), chunk):
                        piece = block[offset : offset + chunk]
                        yield piece
                        sent += len(piece)
                        if pacer is not None:
                            await pacer.handed_on(len(piece))
                if not cfg.loop or sent == 0:
                    log.info("source %s: end of %s", self.name, cfg.path)
                    return
                log.debug("source %s: looping %s", self.name, cfg.path)
        finally:
            file.close()

    async def _blocks(self, file: BinaryIO, block_size: int) -> AsyncIterator[bytes]:
        """The audio data, a block at a time, stopping early if the file was truncated."""
        fd, offset, remaining = file.fileno(), self._data_offset, self._data_size
        frame = self._format.bytes_per_frame
        cached = CachedReader(frame)
        while remaining > 0:
            size = min(block_size, remaining)
            block = cached.read(fd, size, offset)
            if block is None:
                block = await self._in_thread(os.pread, fd, size, offset)
                block = block[: len(block) - len(block) % frame]
            if not block:
                log.warning("source %s: %s became shorter while reading", self.name, file.name)
                return
            offset += len(block)
            remaining -= len(block)
            yield block

    async def _in_thread(self, func: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.to_thread(func, *args)
        except OSError as exc:
            msg = f"source {self.name}: reading {self.config.path} failed: {exc.strerror or exc}"
            raise ListendError(msg) from exc


class CachedReader:
    """Reads what the page cache already holds without a thread (``RWF_NOWAIT``), where the
    platform and the file system can; says ``None`` where the disk would have to be waited for.
    """

    def __init__(self, frame: int) -> None:
        self.frame = frame  # whole frames only: a cached part may end inside one
        self.flag = _RWF_NOWAIT

    def read(self, fd: int, size: int, offset: int) -> bytes | None:
        """Up to ``size`` bytes at ``offset``, whole frames, or None: ask the thread."""
        if self.flag is None:
            return None
        buf = bytearray(size)
        try:
            got = os.preadv(fd, [buf], offset, self.flag)
        except BlockingIOError:
            return None  # not cached: the thread reads it (and the kernel reads ahead)
        except OSError as exc:
            if exc.errno not in _NOWAIT_UNSUPPORTED:
                return None  # the thread's read reports it
            self.flag = None
            return None
        got -= got % self.frame
        if not got:
            return None  # the end, or not cached: the thread's read says which
        del buf[got:]
        return bytes(buf)
