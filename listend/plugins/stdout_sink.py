"""The ``stdout`` sink: live captions on a terminal, JSON lines otherwise.

Captions: the current line is ``[source] `` + the finals committed so far in the utterance
+ the newest interim hypothesis (dimmed), redrawn in place; ``speech_final`` (or an
utterance end, or listend's own finalize) ends the line. A line longer than the terminal is
committed and continued on the next one, since a carriage return only reaches the start of
the last screen row. Writes happen in a thread: a slow pipe must not stall the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import Field

from listend.api import (
    AnyEvent,
    DeliveryError,
    PluginContext,
    Sink,
    SinkConfig,
    TranscriptEvent,
    UtteranceEndEvent,
    printable,
    to_json,
)

DIM = "\x1b[2m"
RESET = "\x1b[0m"
CLEAR_LINE = "\r\x1b[K"
MIN_INTERIM_ROOM = 10


class StdoutSinkConfig(SinkConfig):
    format: Literal["auto", "captions", "jsonl"] = Field(
        default="auto", description="auto: captions on a terminal, else JSON lines"
    )


class CaptionRenderer:
    """Turns events into terminal output; keeps what the current line shows."""

    def __init__(
        self, width: Callable[[], int] = lambda: shutil.get_terminal_size().columns
    ) -> None:
        self._width = width
        self._source: str | None = None
        self._committed = ""  # finals of the open line
        self._showing = False  # a line (committed text and/or an interim) is on screen

    def render(self, event: AnyEvent) -> str:
        if isinstance(event, UtteranceEndEvent):
            return self._end_line() if event.source == self._source else ""
        if not isinstance(event, TranscriptEvent):
            return ""
        out = ""
        if self._source is not None and event.source != self._source:
            out += self._end_line()
        self._source = event.source
        text = " ".join(printable(event.text).split())  # never an ESC sequence from the network
        if not event.is_final:
            return out + self._draw(text) if text else out
        if text:
            out += self._commit(text)
        if event.speech_final or event.from_finalize:
            out += self._end_line()
        return out

    def close(self) -> str:
        """What to write on exit so the shell prompt starts on a clean line."""
        return self._end_line()

    def _prefix(self) -> str:
        return f"[{self._source}] "

    def _draw(self, interim: str) -> str:
        """Redraw the line: committed text, then the interim (its tail, if it is too long)."""
        width = max(20, self._width()) - 1
        out = ""
        head = self._prefix() + (self._committed + " " if self._committed else "")
        if width - len(head) < MIN_INTERIM_ROOM and self._committed:
            out = CLEAR_LINE + self._prefix() + self._committed + "\n"
            self._committed = ""
            head = self._prefix()
        room = width - len(head)
        shown = interim if len(interim) <= room else "…" + interim[len(interim) - room + 1 :]
        self._showing = True
        return out + CLEAR_LINE + head + DIM + shown + RESET

    def _commit(self, text: str) -> str:
        width = max(20, self._width()) - 1
        line = self._prefix() + (f"{self._committed} {text}" if self._committed else text)
        if len(line) > width and self._committed:
            # the committed part fills the row: end it, continue on a fresh line
            out = CLEAR_LINE + self._prefix() + self._committed + "\n"
            self._committed = text
            self._showing = True
            return out + CLEAR_LINE + self._prefix() + self._committed
        self._committed = line.removeprefix(self._prefix())
        self._showing = True
        return CLEAR_LINE + line

    def _end_line(self) -> str:
        if not self._showing:
            self._source = None
            return ""
        out = CLEAR_LINE + (self._prefix() + self._committed if self._committed else "")
        out += "\n" if self._committed else ""
        self._committed = ""
        self._showing = False
        self._source = None
        return out


class StdoutSink(Sink):
    type_name = "stdout"
    config_model = StdoutSinkConfig
    config: StdoutSinkConfig
    max_batch = 64

    def __init__(self, name: str, config: Any, context: PluginContext) -> None:
        super().__init__(name, config, context)
        fmt = self.config.format
        self.captions = fmt == "captions" or (fmt == "auto" and sys.stdout.isatty())
        self.renderer = CaptionRenderer()
        self.closed = False  # the reader of stdout went away (`listend run | head`)

    async def deliver(self, events: Sequence[AnyEvent]) -> None:
        if self.closed:
            raise DeliveryError("stdout is closed (its reader went away); events stay queued")
        if self.captions:
            text = "".join(self.renderer.render(event) for event in events)
        else:
            text = "".join(to_json(event) + "\n" for event in events)
        if text:
            await self._write(text)

    async def stop(self) -> None:
        if self.captions and not self.closed and (text := self.renderer.close()):
            with contextlib.suppress(DeliveryError):
                await self._write(text)

    async def _write(self, text: str) -> None:
        try:
            await asyncio.to_thread(_write, text)
        except BrokenPipeError:
            # No traceback and no "Exception ignored" at exit: what is left goes nowhere,
            # and the outbox keeps the events this delivery did not get out.
            self.closed = True
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise DeliveryError("stdout is closed (its reader went away)") from None


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
