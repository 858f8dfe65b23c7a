"""Capture: a source's audio into the replay buffer, through the voice gate, unless paused.

A paused source is still read (a live device must be drained) but nothing is kept, so nothing
is sent to Deepgram or billed; the buffer marks the pause like a gate close, and audio after a
resume keeps its source offset, so event times stay in source time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator

from listend.daemon.errors import ListendError
from listend.daemon.plugin.source import Source
from listend.daemon.stream.replay import ReplayBuffer
from listend.daemon.stream.stats import SessionStats
from listend.daemon.stream.voice_gate import Passage, VoiceGate

log = logging.getLogger(__name__)


class Capture:
    def __init__(
        self,
        name: str,
        source: Source,
        buffer: ReplayBuffer,
        stats: SessionStats,
        gate: VoiceGate | None,
    ) -> None:
        self.name = name
        self.source = source
        self.buffer = buffer
        self.stats = stats
        self.gate = gate
        self.live = source.realtime
        self.paused = False
        self.failure: ListendError | None = None  # why the source stopped, if it had to
        self._offset = 0  # source bytes read so far
        self._skipping = False  # the last chunk was dropped for a pause

    async def run(self) -> None:
        stream = self.source.stream()
        gate = self.gate
        try:
            async for chunk in stream:
                if not chunk:
                    continue  # an empty frame would close Deepgram's stream
                self.stats.audio_seconds_captured += self.buffer.to_seconds(len(chunk))
                at = self._offset
                self._offset += len(chunk)
                passages = [Passage(at, chunk)] if gate is None else gate.feed(chunk)
                if self.paused:
                    await self._skip()
                    continue
                await self._keep_passages(passages)
        except ListendError as exc:
            log.error("source %s failed: %s", self.name, exc)  # noqa: TRY400 - a user error
            self.failure = exc
        finally:
            if isinstance(stream, AsyncGenerator):
                await stream.aclose()
            if gate is not None and not self.paused:
                await self._keep_passages(gate.flush())
            await self.buffer.finish()

    async def _skip(self) -> None:
        if not self._skipping:
            self._skipping = True
            await self.buffer.pause()

    async def _keep_passages(self, passages: list[Passage]) -> None:
        self._skipping = False
        for passage in passages:
            if passage.audio:
                await self._keep(passage.audio, passage.offset)
            if passage.closes:
                await self.buffer.pause()

    async def _keep(self, audio: bytes, at: int) -> None:
        """Into the replay buffer at source offset ``at`` (after a skip, the timeline jumps)."""
        if not self.live and self.buffer.full():
            await self.buffer.wait_for_room()
        await self.buffer.append(audio, at)
        self.stats.audio_seconds_gated_in += self.buffer.to_seconds(len(audio))
