"""The ``file`` source: a WAV or raw PCM file, paced in real time like a live source."""

from __future__ import annotations

import asyncio
import logging
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from listend import hookimpl
from listend.daemon.errors import ConfigError
from listend.daemon.hookspecs import RegisterSource
from listend.daemon.sources import AudioFormat, PluginContext, Source, SourceConfig

log = logging.getLogger(__name__)


class FileSourceConfig(SourceConfig):
    path: Path = Field(description="WAV file, or raw PCM with `format: raw`")
    format: Literal["wav", "raw"] = Field(default="wav", description="wav reads its header")
    sample_rate: int = Field(default=16000, gt=0, description="raw only")
    channels: int = Field(default=1, gt=0, description="raw only")
    realtime: bool = Field(default=True, description="pace like a live source; false: fast")
    loop: bool = Field(default=False, description="start again at the end (demos)")
    chunk_ms: int = Field(default=100, ge=10, le=1000)


class FileSource(Source):
    type_name = "file"
    config_model = FileSourceConfig
    config: FileSourceConfig

    def __init__(self, name: str, config: Any, context: PluginContext) -> None:
        super().__init__(name, config, context)
        self._format = self._probe()

    def _probe(self) -> AudioFormat:
        cfg = self.config
        if cfg.format == "raw":
            if not cfg.path.is_file():
                raise ConfigError(f"source {self.name}: {cfg.path} does not exist")
            return AudioFormat(cfg.sample_rate, cfg.channels)
        try:
            with wave.open(str(cfg.path), "rb") as wav:
                if wav.getsampwidth() != 2 or wav.getcomptype() != "NONE":  # noqa: PLR2004
                    msg = f"source {self.name}: {cfg.path} is not 16-bit PCM WAV"
                    raise ConfigError(msg)
                return AudioFormat(wav.getframerate(), wav.getnchannels())
        except (OSError, EOFError, wave.Error) as exc:
            raise ConfigError(f"source {self.name}: cannot read WAV {cfg.path}: {exc}") from None

    @property
    def audio_format(self) -> AudioFormat:
        return self._format

    @property
    def realtime(self) -> bool:
        """Not live: the stream session may pause reading instead of dropping audio."""
        return self.config.realtime

    async def stream(self) -> AsyncIterator[bytes]:
        cfg = self.config
        chunk = self._format.bytes_per_second * cfg.chunk_ms // 1000
        chunk -= chunk % self._format.bytes_per_frame
        data = await asyncio.to_thread(self._read_all)
        sent = 0.0
        started = time.monotonic()
        while True:
            for offset in range(0, len(data), chunk):
                piece = data[offset : offset + chunk]
                yield piece
                if cfg.realtime:
                    sent += self._format.seconds(len(piece))
                    await asyncio.sleep(max(0.0, started + sent - time.monotonic()))
            if not cfg.loop:
                return
            log.debug("source %s: looping %s", self.name, cfg.path)

    def _read_all(self) -> bytes:
        if self.config.format == "wav":
            with wave.open(str(self.config.path), "rb") as wav:
                data = wav.readframes(wav.getnframes())
        else:
            data = self.config.path.read_bytes()
        return data[: len(data) - len(data) % self._format.bytes_per_frame]


@hookimpl
def register_source_types(register: RegisterSource) -> None:
    register(FileSource)
