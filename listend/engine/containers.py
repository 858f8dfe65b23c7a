"""Uploaded audio (a stream of bytes) -> its PCM format and a stream of PCM chunks.

Raw PCM when the request declares ``encoding``; WAV in an encoding the engine decodes itself
(16- and 32-bit PCM, µ-law, A-law) parsed as it arrives; any other container (FLAC, MP3, Ogg,
float, 8- or 24-bit WAV, video...) piped through ffmpeg when it is installed, header and all.
Nothing is held in memory beyond one chunk and the WAV header (at most :data:`MAX_WAV_HEADER`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

from listend.daemon.child_env import child_environment
from listend.engine.formats import UnsupportedAudio, check_audio_format

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
_CHUNK_HEADER = 8  # RIFF chunk id + size
_FMT_SIZE = 16  # the fields every fmt chunk has
MAX_WAV_HEADER = 1 << 20  # the chunks before the audio (metadata) are kept, so bounded
_WAVE_EXTENSIBLE = 0xFFFE
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"  # after the tag
#: (format tag, bits per sample) the engine decodes without ffmpeg
_NATIVE = {(1, 16): "linear16", (1, 32): "linear32", (7, 8): "mulaw", (6, 8): "alaw"}


@dataclass(frozen=True, slots=True)
class PcmFormat:
    encoding: str
    sample_rate: int
    channels: int


class _Reader:
    """Exact reads over an async iterator of byte chunks."""

    def __init__(self, chunks: AsyncIterator[bytes], head: bytes = b"") -> None:
        self._chunks = chunks
        self._buffer = bytearray(head)
        self.exhausted = False
        self.kept: bytearray | None = None  # what read() consumed, while keeping

    def keep(self) -> None:
        """Remember what is read from now on, for :meth:`rewind`."""
        self.kept = bytearray()

    def rewind(self) -> None:
        """Put back what was read since :meth:`keep`."""
        if self.kept is not None:
            self._buffer[:0] = self.kept
            self.kept = None

    async def _fill(self, size: int) -> None:
        while len(self._buffer) < size and not self.exhausted:
            try:
                self._buffer += await anext(self._chunks)
            except StopAsyncIteration:
                self.exhausted = True

    async def read(self, size: int) -> bytes:
        await self._fill(size)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        if self.kept is not None:
            self.kept += data
        return data

    async def peek(self, size: int) -> bytes:
        await self._fill(size)
        return bytes(self._buffer[:size])

    async def rest(self) -> AsyncIterator[bytes]:
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            yield data
        async for chunk in self._chunks:
            yield chunk


async def open_audio(
    chunks: AsyncIterator[bytes], declared: PcmFormat | None
) -> tuple[PcmFormat, AsyncIterator[bytes]]:
    """The PCM format and PCM chunks of an upload; raises UnsupportedAudio."""
    reader = _Reader(chunks)
    if declared is not None:
        check_audio_format(declared.encoding, declared.sample_rate, declared.channels)
        return declared, reader.rest()
    head = await reader.peek(12)
    if not head:
        raise UnsupportedAudio("the request has no audio")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        reader.keep()
        parsed = await _read_wav_header(reader)
        if parsed is not None:
            reader.kept = None
            return parsed, reader.rest()
        # A WAV we cannot read directly (float, 8-bit, ADPCM...): ffmpeg decodes it, header
        # included (it was consumed to find out).
        reader.rewind()
    return await _ffmpeg(reader.rest())


async def _read_wav_header(reader: _Reader) -> PcmFormat | None:
    """Consume the header up to the data chunk; None if the engine cannot decode it itself."""
    await reader.read(12)
    fmt: PcmFormat | None = None
    native = False
    read = 12
    while True:
        header = await reader.read(_CHUNK_HEADER)
        if len(header) < _CHUNK_HEADER:
            raise UnsupportedAudio("the WAV file has no data chunk")
        kind, size = header[:4], struct.unpack("<I", header[4:])[0]
        if kind == b"data":
            if fmt is None:
                raise UnsupportedAudio("the WAV file has no fmt chunk before its data")
            return fmt if native else None
        read += _CHUNK_HEADER + size + (size & 1)
        if read > MAX_WAV_HEADER:
            raise UnsupportedAudio(f"the WAV file has over {MAX_WAV_HEADER} bytes before its audio")
        body = await reader.read(size + (size & 1))
        if kind == b"fmt ":
            fmt, native = _parse_fmt(body[:size])


def _parse_fmt(body: bytes) -> tuple[PcmFormat, bool]:
    """The format a fmt chunk declares, and whether the engine decodes it without ffmpeg."""
    if len(body) < _FMT_SIZE:
        raise UnsupportedAudio(f"the WAV fmt chunk is {len(body)} bytes, too short to be valid")
    tag, channels, rate, _byte_rate, _align, bits = struct.unpack("<HHIIHH", body[:_FMT_SIZE])
    if tag == _WAVE_EXTENSIBLE and len(body) >= 40 and body[26:40] == _GUID_TAIL:  # noqa: PLR2004
        tag = struct.unpack("<H", body[24:26])[0]  # the SubFormat GUID starts with the tag
    encoding = _NATIVE.get((tag, bits))
    if encoding is None:
        return PcmFormat("linear16", rate, channels), False
    check_audio_format(encoding, rate, channels)
    return PcmFormat(encoding, rate, channels), True


async def _ffmpeg(chunks: AsyncIterator[bytes]) -> tuple[PcmFormat, AsyncIterator[bytes]]:
    binary = shutil.which("ffmpeg")
    if binary is None:
        raise UnsupportedAudio(
            "this container needs ffmpeg to decode (install it), or send WAV or raw PCM "
            "with encoding and sample_rate"
        )
    decoder = await _Ffmpeg.start(binary, chunks)
    try:
        fmt = await decoder.header()
    except BaseException:
        await decoder.stop()
        raise
    return fmt, decoder.pcm()


class _Ffmpeg:
    """ffmpeg as a pipe: the upload in on stdin, 16 kHz 16-bit WAV out on stdout."""

    def __init__(self, process: asyncio.subprocess.Process, chunks: AsyncIterator[bytes]) -> None:
        stdin, stdout, stderr = process.stdin, process.stdout, process.stderr
        if stdin is None or stdout is None or stderr is None:
            raise RuntimeError("ffmpeg was started without its three pipes")
        self._process = process
        self._stdin, self._stdout, self._stderr = stdin, stdout, stderr
        self._feeder = asyncio.create_task(self._feed(chunks), name="listend[engine-ffmpeg]")
        self._reader = _Reader(self._output())

    @classmethod
    async def start(cls, binary: str, chunks: AsyncIterator[bytes]) -> _Ffmpeg:
        process = await asyncio.create_subprocess_exec(
            binary,
            *("-hide_banner", "-loglevel", "error", "-nostdin", "-i", "pipe:0"),
            *("-vn", "-f", "wav", "-acodec", "pcm_s16le", "-ar", "16000", "pipe:1"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=child_environment(),
        )
        return cls(process, chunks)

    async def _feed(self, chunks: AsyncIterator[bytes]) -> None:
        stdin = self._stdin
        try:
            async for chunk in chunks:
                stdin.write(chunk)
                await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # ffmpeg gave up; its stderr says why
        finally:
            stdin.close()

    async def _output(self) -> AsyncIterator[bytes]:
        while chunk := await self._stdout.read(CHUNK):
            yield chunk

    async def header(self) -> PcmFormat:
        fmt = await _read_wav_header(self._reader) if await self._reader.peek(12) else None
        if fmt is None:
            raise UnsupportedAudio(await self._error())
        return fmt

    async def pcm(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._reader.rest():
                yield chunk
            if await self._process.wait() != 0:
                raise UnsupportedAudio(await self._error())
            await self._feeder  # the upload's own errors (a failed download) surface here
        finally:
            await self.stop()

    async def _error(self) -> str:
        """ffmpeg's complaint, or the upload's own error if that is what stopped it."""
        await self._process.wait()
        await asyncio.wait([self._feeder])
        if not self._feeder.cancelled() and (failure := self._feeder.exception()) is not None:
            raise failure
        detail = (await self._stderr.read()).decode(errors="replace").strip()
        lines = detail.splitlines()
        return "could not decode the audio" + (f": {lines[-1]}" if lines else "")

    async def stop(self) -> None:
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            await self._process.wait()
        self._feeder.cancel()
        await asyncio.gather(self._feeder, return_exceptions=True)
