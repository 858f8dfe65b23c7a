"""Building blocks for stream-session tests: in-memory sources, sessions on the test server."""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from listend.daemon.config.models import DeepgramConfig
from listend.daemon.events import AnyEvent, TranscriptEvent
from listend.daemon.plugin.source import AudioFormat, PluginContext, Source, SourceConfig
from listend.daemon.plugin.stream_options import StreamOptions
from listend.daemon.retry.backoff import Backoff
from listend.daemon.stream.endpoint import Endpoint
from listend.daemon.stream.session import StreamSession
from listend.daemon.stream.spool import Spool
from listend.testing import DeepgramTestServer


class MemorySource(Source):
    """Yields ``pcm`` in ``chunk_ms`` chunks; live (paced) or as fast as the session takes it.

    ``pauses`` maps a byte offset to seconds of yielding nothing there (a gated microphone);
    ``holds`` maps a byte offset to an event: nothing more is yielded there until it is set, so
    a test can make something happen at an exact place in the audio however slow the machine.
    Chunks never straddle a pause or hold offset; pacing resumes from where it held.
    """

    type_name = "memory"

    def __init__(
        self,
        pcm: bytes,
        *,
        sample_rate: int = 16000,
        channels: int = 1,
        chunk_ms: int = 100,
        realtime: bool = False,
        pauses: dict[int, float] | None = None,
        holds: dict[int, asyncio.Event] | None = None,
    ) -> None:
        super().__init__(
            "memory", SourceConfig(type="memory"), PluginContext("test", Path("/nonexistent"))
        )
        self.pcm = pcm
        self._format = AudioFormat(sample_rate, channels)
        self.chunk = self._format.bytes_per_second * chunk_ms // 1000
        self.realtime = realtime
        self.pauses = dict(pauses or {})
        self.holds = dict(holds or {})
        self.yielded = 0

    @property
    def audio_format(self) -> AudioFormat:
        return self._format

    async def stream(self) -> AsyncIterator[bytes]:
        started = time.monotonic()
        paused = 0.0
        offset = 0
        while offset < len(self.pcm):
            if offset in self.pauses:
                await asyncio.sleep(self.pauses[offset])
                paused += self.pauses[offset]
            if offset in self.holds:
                held = time.monotonic()
                await self.holds[offset].wait()
                paused += time.monotonic() - held
            stops = [*self.pauses, *self.holds]
            limit = min([offset + self.chunk, *(p for p in stops if p > offset)])
            piece = self.pcm[offset:limit]
            self.yielded += len(piece)  # before yielding: a stop may cancel the consumer after it
            yield piece
            offset += len(piece)
            if self.realtime:
                due = started + paused + self._format.seconds(offset)
                await asyncio.sleep(max(0.0, due - time.monotonic()))


class Collector:
    """A ``publish`` callable that keeps every event."""

    def __init__(self) -> None:
        self.events: list[AnyEvent] = []

    async def __call__(self, event: AnyEvent, on_commit: Callable[[], None] | None = None) -> None:
        self.events.append(event)
        if on_commit is not None:
            on_commit()  # kept: as committed as it gets here

    def finals(self) -> list[TranscriptEvent]:
        return [e for e in self.events if isinstance(e, TranscriptEvent) and e.is_final]

    def final_words(self) -> list[str]:
        return [w.word for e in self.finals() for w in e.words]


def make_session(
    dg: DeepgramTestServer,
    source: Source,
    publish: Collector,
    *,
    options: dict[str, Any] | None = None,
    authorization: str | None = None,
    fast_backoff: bool = True,
    spool: Spool | None = None,
    **deepgram: Any,
) -> StreamSession:
    session = StreamSession(
        name="hall",
        device="test",
        source=source,
        options=StreamOptions(model="nova-3", **(options or {})),
        deepgram=DeepgramConfig(**deepgram),
        endpoint=Endpoint(dg.url, authorization or f"Token {dg.api_key}"),
        publish=publish,
        spool=spool,
    )
    if fast_backoff:
        session.backoff = Backoff(initial=0.05, cap=0.3)
    return session


def watermark(pcm: bytes) -> bytes:
    """Fill silence with a position pattern the scripted recognizer still hears as silence,
    so any slice of the audio can be located in the whole."""
    samples = array("h", pcm)
    for index, value in enumerate(samples):
        if value == 0:
            samples[index] = 1 + index % 251
    return samples.tobytes()


def source_ranges(pcm: bytes, pieces: Sequence[bytes]) -> list[tuple[int, int]]:
    """Where each received piece sits in ``pcm`` (raises if a piece is not a slice of it)."""
    ranges = []
    for piece in pieces:
        probe = piece[:4096]
        at = pcm.find(probe)
        while at != -1 and pcm[at : at + len(piece)] != piece:
            at = pcm.find(probe, at + 2)
        if at == -1:
            raise AssertionError(
                f"a connection received {len(piece)} bytes that are not source audio"
            )
        ranges.append((at, at + len(piece)))
    return ranges


def covers(ranges: Sequence[tuple[int, int]], total: int) -> bool:
    reached = 0
    for start, end in sorted(ranges):
        if start > reached:
            return False
        reached = max(reached, end)
    return reached >= total


def config_text(
    dg_url: str,
    wav: Path,
    *,
    extra_source: str = "",
    sink: str = "",
    device: str = "test-box",
    extra: str = "",
) -> str:
    """A `listend run` config: one file source ``hall``; ``extra`` holds more top-level keys."""
    return f"""\
device: {device}
state_dir: {wav.parent / "state"}
deepgram:
  url: {dg_url}
  api_key: $env:DG_TEST_KEY
  options: {{model: nova-3}}
{extra}sources:
  hall:
    type: file
    path: {wav}
{extra_source}sinks:
{sink or "  out: {type: stdout, format: jsonl}"}
"""
