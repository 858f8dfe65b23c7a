"""A Wyoming request's audio as a source, so the request streams through a StreamSession."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from listend.daemon.errors import ListendError
from listend.daemon.plugin.source import AudioFormat, PluginContext, Source, SourceConfig

#: Chunks queued between the client and the session: a full queue stops reading the socket.
QUEUE_CHUNKS = 64
_ENCODINGS = {2: "linear16", 4: "linear32"}


def audio_format(rate: int, width: int, channels: int) -> AudioFormat:
    """The format of ``audio-start``; Home Assistant sends 16 kHz, 16-bit, mono."""
    encoding = _ENCODINGS.get(width)
    if encoding is None or rate <= 0 or channels <= 0:
        raise ListendError(
            f"unsupported audio: rate {rate}, width {width}, channels {channels} "
            "(expected 16- or 32-bit PCM)"
        )
    return AudioFormat(rate, channels, encoding)


class RequestAudio(Source):
    """The chunks one client sends between ``audio-start`` and ``audio-stop``.

    Not realtime: the session may pause reading (the client then waits on TCP) instead of
    losing audio.
    """

    type_name = "wyoming"
    realtime = False

    def __init__(self, name: str, fmt: AudioFormat, context: PluginContext) -> None:
        super().__init__(name, SourceConfig(type="wyoming"), context)
        self._format = fmt
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_CHUNKS)

    @property
    def audio_format(self) -> AudioFormat:
        return self._format

    async def put(self, chunk: bytes) -> None:
        await self._queue.put(chunk)

    async def end(self) -> None:
        """``audio-stop``: the stream ends here, and the session finalizes."""
        await self._queue.put(None)

    async def stream(self) -> AsyncIterator[bytes]:
        while (chunk := await self._queue.get()) is not None:
            yield chunk
