"""The durable audio spool: audio no committed final covers, on disk, for the next start.

A stream session writes here only while it is not keeping up (disconnected, or behind) and
when it stops with audio untranscribed; a healthy stream writes nothing (SD cards wear out).
The next start transcribes the spool before the live audio, then removes it; so does the
running session, at once, for audio an outage longer than the replay buffer dropped from memory
(a *span* of the live run, :meth:`SpoolRun.span`: while it is being transcribed, the live run is
never released past it).

Layout: ``<state_dir>/spool/<source>/``, one *run* of the source per ``<epoch>`` (the run's
event epoch): append-only segment files ``<epoch>-<n>.pcm`` and a marker ``<epoch>.acked``
holding the source offset up to which finals are committed to every outbox (what a restart
skips). A segment file is a header line (JSON: the audio format and the run's wall-clock
start) followed by records: ``<qI`` (source byte offset, length) and that much PCM. Files are
fsynced after each write (at most once per SPOOL_INTERVAL); a record torn by a power cut is
ignored when read, so a power cut costs at most the last interval.

Every write and removal runs on the spool's own thread, in order; a run being recovered is
read a segment file at a time in a worker thread: never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from listend.daemon.plugin.source import AudioFormat, Source

log = logging.getLogger(__name__)

T = TypeVar("T")
MAGIC = "listend-spool/1"
RECORD = struct.Struct("<qI")
SEGMENT_BYTES = 4 << 20  # a new segment file after this much audio (freed a file at a time)


def spool_dir(state_dir: Path, source: str) -> Path:
    return state_dir / "spool" / source


@dataclass
class Segment:
    path: Path
    size: int = 0  # bytes of audio in it
    source_end: int = 0  # source offset just after its last record


@dataclass(eq=False)
class SpoolRun:
    """One run's spooled audio: written by its session, read back by the next start (or, a span
    of it, by the running session after an outage longer than its replay buffer)."""

    directory: Path
    epoch: int
    wall_start: float
    format: AudioFormat
    segments: list[Segment] = field(default_factory=list)
    acked: int = 0  # source offset: finals up to here are committed (skipped on recovery)
    until: int | None = None  # a span: source offset where its audio ends
    parent: SpoolRun | None = None  # a span: the live run it is part of
    spans: list[SpoolRun] = field(default_factory=list)  # spans being transcribed now
    wanted: int = 0  # source offset the run's own finals are committed to (spans may hold it)

    @property
    def size(self) -> int:
        if self.until is not None:
            return max(0, self.until - self.acked)
        return sum(segment.size for segment in self.segments)

    @property
    def seconds(self) -> float:
        return self.size / self.format.bytes_per_second

    def span(self, begin: int, until: int) -> SpoolRun:
        """The audio from source offset ``begin`` to ``until`` as a run of its own, to transcribe
        while this run goes on; this run is not released past what the span has committed."""
        span = SpoolRun(
            self.directory,
            self.epoch,
            self.wall_start,
            self.format,
            list(self.segments),
            acked=begin,
            until=until,
            parent=self,
        )
        self.spans.append(span)
        return span

    @property
    def source_end(self) -> int:
        return self.segments[-1].source_end if self.segments else 0

    def header(self) -> bytes:
        fmt = self.format
        fields = {
            "magic": MAGIC,
            "sample_rate": fmt.sample_rate,
            "channels": fmt.channels,
            "encoding": fmt.encoding,
            "epoch": self.epoch,
            "wall_start": self.wall_start,
        }
        return json.dumps(fields).encode() + b"\n"

    def records(self) -> Iterator[tuple[int, bytes]]:
        """(source offset, PCM) of what is not acknowledged yet, in order; a torn tail ends a
        file's records."""
        for segment in self.segments:
            yield from self._segment_records(segment)

    async def read(self) -> AsyncIterator[list[tuple[int, bytes]]]:
        """:meth:`records`, a segment file at a time, read off the event loop."""
        for segment in self.segments:
            batch = await asyncio.to_thread(list, self._segment_records(segment))
            if batch:
                yield batch

    def _segment_records(self, segment: Segment) -> Iterator[tuple[int, bytes]]:
        for offset, audio in _read_records(segment.path):
            if offset + len(audio) <= self.acked:
                continue
            if self.until is not None and offset >= self.until:
                return
            cut = max(0, self.acked - offset)
            end = len(audio) if self.until is None else min(len(audio), self.until - offset)
            yield offset + cut, audio[cut:end]


class Spool:
    """The spool directory of one source; what runs it holds, appends, releases, removals."""

    def __init__(self, directory: Path, fmt: AudioFormat, *, max_bytes: int) -> None:
        self.directory = directory
        self.format = fmt
        self.max_bytes = max_bytes
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"spool-{directory.name}")
        self._runs: list[SpoolRun] = []

    @classmethod
    def of_source(cls, state_dir: Path, source: Source, max_mb: float) -> Spool | None:
        """The spool of ``source`` under ``state_dir``. None with ``spool_max_mb: 0``, and for
        a source that is not live: it reads its audio again from the start when restarted."""
        max_bytes = int(max_mb * 1024 * 1024)
        if not max_bytes or not source.realtime:
            return None
        return cls(spool_dir(state_dir, source.name), source.audio_format, max_bytes=max_bytes)

    async def _call(self, func: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, func, *args)

    def _submit(self, func: Callable[..., object], *args: object) -> None:
        """Fire and forget, in order after what was submitted before."""
        self._executor.submit(func, *args)

    def size(self) -> int:
        """Bytes of audio held for the runs this process knows (its own and those loaded)."""
        return sum(run.size for run in self._runs)

    def track(self, run: SpoolRun) -> None:
        if all(known is not run for known in self._runs):
            self._runs.append(run)

    async def load(self) -> list[SpoolRun]:
        """The runs left by earlier starts, oldest first (runs of another format: removed)."""
        runs = await self._call(_load_runs, self.directory)
        usable = []
        for run in runs:
            if any(known.epoch == run.epoch for known in self._runs):
                continue  # this process's own (a live run spooling now)
            if run.format != self.format:
                log.error(
                    "spool %s: %.1fs of audio from run %d in another format (%s): discarded",
                    self.directory,
                    run.size / run.format.bytes_per_second,
                    run.epoch,
                    run.format,
                )
                await self.remove(run)
            else:
                usable.append(run)
                self.track(run)
        return usable

    async def append(self, run: SpoolRun, records: list[tuple[int, bytes]]) -> None:
        """Append ``records`` to ``run``'s current segment (a new one when full), fsynced."""
        if not records:
            return
        segment = run.segments[-1] if run.segments else None
        self.track(run)
        if segment is None or segment.size >= SEGMENT_BYTES:
            path = self.directory / f"{run.epoch}-{len(run.segments) + 1:06d}.pcm"
            segment = Segment(path)
            run.segments.append(segment)
            header = run.header()
        else:
            header = b""
        for offset, audio in records:
            segment.size += len(audio)
            segment.source_end = offset + len(audio)
        await self._call(_append_records, segment.path, header, records)

    def release(self, run: SpoolRun, source_offset: int) -> None:
        """Finals up to ``source_offset`` are committed: note it, drop the files it covers
        (of a live run, no further than what its spans being transcribed have committed)."""
        if run.parent is not None:
            run.acked = max(run.acked, source_offset)
            self.release(run.parent, run.parent.wanted)
            return
        run.wanted = max(run.wanted, source_offset)
        source_offset = min([run.wanted, *(span.acked for span in run.spans)])
        if source_offset <= run.acked:
            return
        run.acked = source_offset
        if not run.segments:
            return
        done = [s for s in run.segments if s.source_end <= source_offset]
        if len(done) == len(run.segments):
            self.forget(run)
            return
        run.segments = run.segments[len(done) :]
        for segment in done:
            self._submit(_unlink, segment.path)
        self._submit(_write_acked, self.directory / f"{run.epoch}.acked", source_offset)

    def forget(self, run: SpoolRun) -> None:
        """Remove everything of ``run`` (it is transcribed and committed); of a live run, what
        its spans still being transcribed do not need."""
        if run.parent is not None:
            run.parent.spans = [span for span in run.parent.spans if span is not run]
            self.release(run.parent, run.parent.wanted)
            return
        if run.spans:
            self.release(run, max(run.wanted, run.source_end))
            return
        segments, run.segments = run.segments, []
        self._runs = [known for known in self._runs if known is not run]
        for segment in segments:
            self._submit(_unlink, segment.path)
        self._submit(_unlink, self.directory / f"{run.epoch}.acked")

    async def remove(self, run: SpoolRun) -> None:
        self.forget(run)
        await self._call(_sync_dir, self.directory)

    async def flush(self) -> None:
        """Wait for what was submitted (removals included)."""
        await self._call(_sync_dir, self.directory)

    def close(self) -> None:
        self._executor.shutdown(wait=False)  # what was submitted still runs


def _append_records(path: Path, header: bytes, records: list[tuple[int, bytes]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("ab") as handle:
        if header:
            handle.write(header)
        for offset, audio in records:
            handle.write(RECORD.pack(offset, len(audio)))
            handle.write(audio)
        handle.flush()
        os.fsync(handle.fileno())
    if new:
        _sync_dir(path.parent)


def _read_records(path: Path) -> Iterator[tuple[int, bytes]]:
    with contextlib.suppress(OSError), path.open("rb") as handle:
        handle.readline()
        while len(head := handle.read(RECORD.size)) == RECORD.size:
            offset, length = RECORD.unpack(head)
            audio = handle.read(length)
            if len(audio) < length:
                return  # torn by a power cut: the rest was never acknowledged as written
            yield offset, audio


def _read_header(path: Path) -> dict[str, object] | None:
    try:
        with path.open("rb") as handle:
            fields = json.loads(handle.readline())
    except (OSError, ValueError):
        return None
    if not isinstance(fields, dict) or fields.get("magic") != MAGIC:
        return None
    return fields


def _load_runs(directory: Path) -> list[SpoolRun]:
    runs: dict[int, SpoolRun] = {}
    for path in sorted(directory.glob("*.pcm")):
        fields = _read_header(path)
        if fields is None:
            log.warning("spool: ignoring %s (no spool header: torn or foreign)", path)
            _unlink(path)
            continue
        epoch = int(str(fields["epoch"]))
        run = runs.get(epoch)
        if run is None:
            fmt = AudioFormat(
                sample_rate=int(str(fields["sample_rate"])),
                channels=int(str(fields["channels"])),
                encoding=str(fields["encoding"]),
            )
            run = runs[epoch] = SpoolRun(directory, epoch, float(str(fields["wall_start"])), fmt)
            with contextlib.suppress(OSError, ValueError):
                run.acked = int((directory / f"{epoch}.acked").read_text())
        segment = Segment(path)
        for offset, audio in _read_records(path):
            segment.size += len(audio)
            segment.source_end = offset + len(audio)
        run.segments.append(segment)
    return [runs[epoch] for epoch in sorted(runs)]


def _write_acked(path: Path, offset: int) -> None:
    """Atomically (a crash leaves the old or the new value); no fsync: a power cut can only
    bring back audio whose finals were committed (delivered twice, with different ids)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(offset))
    tmp.replace(path)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def _sync_dir(directory: Path) -> None:
    if not directory.exists():
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
