"""Multichannel streams: one recognizer per channel, each fed its own samples.

With ``multichannel=true`` Deepgram transcribes every channel independently and tags each
message with ``channel_index: [channel, channels]``; otherwise one recognizer hears the audio
as it comes (channel 0).
"""

from __future__ import annotations

from array import array
from collections.abc import Awaitable, Callable
from dataclasses import replace

from listend.dgproto.recognizer import (
    Recognizer,
    RecognizerInfo,
    RecognizerOutput,
    StreamParams,
    UnsupportedParams,
)

SAMPLE_WIDTH = {"linear16": 2, "linear32": 4, "mulaw": 1, "alaw": 1}
_TYPECODE = {1: "B", 2: "h", 4: "i"}
Tagged = list[tuple[int, RecognizerOutput]]


class ChannelRecognizers:
    """The recognizers of one connection, addressed like a single one."""

    def __init__(self, factory: Callable[[StreamParams], Recognizer], params: StreamParams) -> None:
        self.split = params.multichannel and params.channels > 1
        if not self.split:
            self.recognizers = [factory(params)]
            return
        self.width = SAMPLE_WIDTH.get(params.encoding, 0)
        if self.width not in _TYPECODE:
            msg = f"multichannel needs raw PCM (linear16/32, mulaw, alaw), not {params.encoding}"
            raise UnsupportedParams(msg)
        self.channels = params.channels
        self.frame = self.width * self.channels
        self._leftover = b""
        mono = replace(params, channels=1, multichannel=False)
        self.recognizers = [factory(mono) for _ in range(self.channels)]

    @property
    def info(self) -> RecognizerInfo:
        return self.recognizers[0].info

    async def feed(self, audio: bytes) -> Tagged:
        if not self.split:
            return [(0, out) for out in await self.recognizers[0].feed(audio)]
        data = self._leftover + audio
        usable = len(data) - len(data) % self.frame
        self._leftover = data[usable:]
        samples = array(_TYPECODE[self.width], data[:usable])
        tagged: Tagged = []
        for channel, recognizer in enumerate(self.recognizers):
            mono = samples[channel :: self.channels].tobytes()
            tagged += [(channel, out) for out in await recognizer.feed(mono)]
        return tagged

    async def finalize(self) -> Tagged:
        return await self._each(lambda r: r.finalize())

    async def close(self) -> Tagged:
        return await self._each(lambda r: r.close())

    async def aclose(self) -> None:
        for recognizer in self.recognizers:
            await recognizer.aclose()

    async def _each(
        self, call: Callable[[Recognizer], Awaitable[list[RecognizerOutput]]]
    ) -> Tagged:
        tagged: Tagged = []
        for channel, recognizer in enumerate(self.recognizers):
            tagged += [(channel, out) for out in await call(recognizer)]
        return tagged
