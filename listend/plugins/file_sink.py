"""The ``file`` sink: transcripts on disk as JSON lines, plain text, SRT or WebVTT.

``path`` is a template: ``{source}``, ``{device}``, ``{sink}``, ``{date}`` (local date of the
event, so ``{date}`` rotates daily) and ``{epoch}`` (one file per source run, what caption
files need). Relative paths are under the state directory. ``max_bytes`` rotates a file to
``<name>.<n><ext>`` when it would grow past the limit; ``keep`` bounds the rotated copies.

Delivery is confirmed once the bytes are written (unbuffered) and, with ``fsync: true``
(default), on the disk. A retried or re-delivered event is not written twice: the sink
remembers the last event id written per source, and on opening an existing JSONL or WebVTT
file reads it back from the file's end (SRT and text carry no ids; after a crash they may
repeat the last cue).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from listend.api import (
    VTT_HEADER,
    AnyEvent,
    DeliveryError,
    PluginContext,
    Sink,
    SinkConfig,
    TranscriptEvent,
    final_cues,
    srt_cue,
    text_line,
    to_json,
    vtt_cue,
)

log = logging.getLogger(__name__)

Format = Literal["jsonl", "text", "srt", "vtt"]
EXTENSIONS: dict[str, str] = {"jsonl": "jsonl", "text": "txt", "srt": "srt", "vtt": "vtt"}
PLACEHOLDERS = ("device", "source", "sink", "date", "epoch")
_TAIL_BYTES = 64 * 1024
_SRT_INDEX = re.compile(r"(?m)^(\d+)\r?\n\d+:\d\d:\d\d,\d{3} --> ")
_VTT_ID = re.compile(r"(?m)^([^\n]+/[^\n]+/\d+/\d+)\r?\n\d+:\d\d:\d\d\.\d{3} --> ")

Position = tuple[int, int]  # (epoch, seq): the order of one source's events


class FileSinkConfig(SinkConfig):
    format: Format = "jsonl"
    path: str | None = Field(
        default=None,
        description="template with {source} {device} {sink} {date} {epoch}; default: "
        "transcripts/{source}-{date}.<ext> (captions: {source}-{epoch})",
    )
    max_bytes: int | None = Field(
        default=None, ge=1024, le=2**40, description="rotate past this size"
    )
    keep: int | None = Field(
        default=None, ge=1, le=10_000, description="rotated files kept per file"
    )
    fsync: bool = Field(
        default=True, description="fsync each batch (survives power loss) or only write it"
    )

    @field_validator("path")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            value.format(**dict.fromkeys(PLACEHOLDERS, "x"))
        except (KeyError, IndexError, ValueError) as exc:
            allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise ValueError(f"placeholders are {allowed}; {exc!s}") from None
        return value


@dataclass
class _Open:
    """A file being appended to."""

    path: Path
    fd: int
    size: int
    srt_index: int = 0


def _position(event_id: str) -> tuple[str, Position] | None:
    parts = event_id.split("/")
    if len(parts) != 4 or not (parts[2].isdigit() and parts[3].isdigit()):  # noqa: PLR2004
        return None
    return parts[1], (int(parts[2]), int(parts[3]))


class FileSink(Sink):
    type_name = "file"
    config_model = FileSinkConfig
    config: FileSinkConfig
    max_batch = 100

    def __init__(self, name: str, config: Any, context: PluginContext) -> None:
        super().__init__(name, config, context)
        cfg = self.config
        ext = EXTENSIONS[cfg.format]
        run = "{epoch}" if cfg.format in ("srt", "vtt") else "{date}"
        self.template = cfg.path or f"transcripts/{{source}}-{run}.{ext}"
        self._files: dict[Path, _Open] = {}
        self._current: dict[str, Path] = {}  # source -> the file it writes to now
        self._written: dict[str, Position] = {}
        self._file_epoch: dict[Path, dict[str, int]] = {}

    def path_for(self, event: AnyEvent) -> Path:
        wall = event.started_at if isinstance(event, TranscriptEvent) else event.at
        rendered = self.template.format(
            device=self.context.device,
            source=event.source,
            sink=self.name,
            date=wall.astimezone().date().isoformat(),
            epoch=event.epoch,
        )
        path = Path(rendered)
        return path if path.is_absolute() else self.context.state_dir / path

    async def deliver(self, events: Sequence[AnyEvent]) -> None:
        try:
            await asyncio.to_thread(self._write, events)
        except OSError as exc:
            raise DeliveryError(f"writing {exc.filename or 'file'}: {exc.strerror}") from None

    async def stop(self) -> None:
        await asyncio.to_thread(self._close_all)

    # -- the writer thread (one delivery at a time) ------------------------------------------

    def _render(self, event: AnyEvent, file: _Open) -> str | None:
        fmt = self.config.format
        if fmt == "jsonl":
            return to_json(event) + "\n"
        if not isinstance(event, TranscriptEvent) or not event.is_final or not event.text.strip():
            return None
        if fmt == "text":
            return text_line(event.text)
        cues = final_cues(event)
        if fmt == "vtt":
            ids = [event.id] if len(cues) == 1 else [f"{event.id}/{n}" for n in range(len(cues))]
            text = "".join(
                vtt_cue(c.start, c.end, c.text, identifier=i)
                for c, i in zip(cues, ids, strict=True)
            )
            return (VTT_HEADER if file.size == 0 else "") + text
        first = file.srt_index + 1
        file.srt_index += len(cues)
        return "".join(srt_cue(first + n, c.start, c.end, c.text) for n, c in enumerate(cues))

    def _write(self, events: Sequence[AnyEvent]) -> None:
        pending: dict[Path, list[str]] = {}
        written: dict[str, Position] = {}
        try:
            for event in events:
                file = self._file_for(event, pending)  # opening a file reads back its last id
                position = (event.epoch, event.seq)
                last = written.get(event.source) or self._written.get(event.source)
                if last is not None and position <= last:
                    continue  # already on disk: a retry or a re-delivery after a crash
                text = self._render(event, file)
                written[event.source] = position
                if text is None:
                    continue
                data = text.encode()
                if (
                    self.config.max_bytes
                    and file.size
                    and file.size + len(data) > self.config.max_bytes
                ):
                    self._flush(file, pending.pop(file.path, []))
                    file = self._rotate(file)
                    text = self._render(event, file) or ""
                    data = text.encode()
                pending.setdefault(file.path, []).append(text)
                file.size += len(data)
            for path, chunks in pending.items():
                self._flush(self._files[path], chunks)
        except OSError:
            self._close_all()  # reopen (and re-read positions) on the retry
            raise
        self._written.update(written)

    def _flush(self, file: _Open, chunks: list[str]) -> None:
        data = "".join(chunks).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(file.fd, view) :]
        if self.config.fsync:
            os.fsync(file.fd)

    def _file_for(self, event: AnyEvent, pending: dict[Path, list[str]]) -> _Open:
        path = self.path_for(event)
        previous_path = self._current.get(event.source)
        self._current[event.source] = path
        if previous_path is not None and previous_path != path:
            self._retire(previous_path, pending)  # e.g. a new {date}
        file = self._files.get(path)
        if file is None:
            file = self._open(path)
        if self.config.format in ("srt", "vtt"):
            epochs = self._file_epoch.setdefault(path, {})
            previous = epochs.get(event.source)
            if previous is not None and previous != event.epoch and file.size:
                # a new run of the source: its times restart at 0, so it gets its own file
                self._flush(file, pending.pop(path, []))
                file = self._rotate(file)
            epochs[event.source] = event.epoch
        return file

    def _retire(self, path: Path, pending: dict[Path, list[str]]) -> None:
        """Close a file no source writes to any more."""
        file = self._files.get(path)
        if file is None or path in self._current.values():
            return
        self._flush(file, pending.pop(path, []))
        os.close(file.fd)
        del self._files[path]
        self._file_epoch.pop(path, None)

    def _open(self, path: Path) -> _Open:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        file = _Open(path, fd, os.fstat(fd).st_size)
        if file.size:
            self._read_back(file)
        self._files[path] = file
        return file

    def _read_back(self, file: _Open) -> None:
        """Recover the SRT cue number and the last event written from an existing file."""
        with file.path.open("rb") as handle:
            handle.seek(max(0, file.size - _TAIL_BYTES))
            tail = handle.read().decode("utf-8", "replace")
        if not tail.endswith("\n"):  # a write torn by a crash: do not glue onto it
            fix = "\n\n" if self.config.format in ("srt", "vtt") else "\n"
            self._flush(file, [fix])
            file.size += len(fix)
        last_id: str | None = None
        fmt = self.config.format
        if fmt == "srt":
            indices = _SRT_INDEX.findall(tail)
            file.srt_index = int(indices[-1]) if indices else 0
        elif fmt == "vtt":
            ids = _VTT_ID.findall(tail)
            last_id = ids[-1] if ids else None
        elif fmt == "jsonl":
            for line in reversed(tail.splitlines()):
                try:
                    last_id = json.loads(line)["id"]
                    break
                except (ValueError, KeyError, TypeError):
                    continue
        found = _position(last_id) if last_id else None
        if found is not None:
            source, position = found
            if position > self._written.get(source, (-1, -1)):
                self._written[source] = position

    def _rotate(self, file: _Open) -> _Open:
        """Move the full file to ``<stem>.<n><suffix>`` (n above any existing) and reopen."""
        os.close(file.fd)
        del self._files[file.path]
        stem, suffix = file.path.stem, file.path.suffix
        pattern = re.compile(rf"^{re.escape(stem)}\.(\d+){re.escape(suffix)}$")
        taken = sorted(
            int(m.group(1)) for p in file.path.parent.iterdir() if (m := pattern.match(p.name))
        )
        number = (taken[-1] + 1) if taken else 1
        file.path.rename(file.path.with_name(f"{stem}.{number}{suffix}"))
        log.info("sink %s: rotated %s", self.name, file.path)
        if self.config.keep is not None:
            for old in [*taken, number][: -self.config.keep]:
                file.path.with_name(f"{stem}.{old}{suffix}").unlink(missing_ok=True)
        fresh = _Open(file.path, 0, 0)
        fresh.fd = os.open(file.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._files[file.path] = fresh
        return fresh

    def _close_all(self) -> None:
        for file in self._files.values():
            try:
                os.close(file.fd)
            except OSError as exc:
                log.warning("sink %s: closing %s: %s", self.name, file.path, exc)
        self._files.clear()
