"""The ``stdout`` sink: live captions on a terminal, JSON lines otherwise."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from listend import hookimpl
from listend.daemon.events import AnyEvent, TranscriptEvent, to_json
from listend.daemon.hookspecs import RegisterSink
from listend.daemon.sinks import Sink, SinkConfig
from listend.daemon.sources import PluginContext


class StdoutSinkConfig(SinkConfig):
    format: Literal["auto", "captions", "jsonl"] = Field(
        default="auto", description="auto: captions on a terminal, else JSON lines"
    )


class StdoutSink(Sink):
    type_name = "stdout"
    config_model = StdoutSinkConfig
    config: StdoutSinkConfig
    max_batch = 64

    def __init__(self, name: str, config: Any, context: PluginContext) -> None:
        super().__init__(name, config, context)
        fmt = self.config.format
        self._captions = fmt == "captions" or (fmt == "auto" and sys.stdout.isatty())
        self._interim_len = 0

    async def deliver(self, events: Sequence[AnyEvent]) -> None:
        out = sys.stdout
        for event in events:
            if not self._captions:
                out.write(to_json(event) + "\n")
            elif isinstance(event, TranscriptEvent) and event.text:
                out.write(self._caption(event))
        out.flush()

    def _caption(self, event: TranscriptEvent) -> str:
        text = f"[{event.source}] {event.text}"
        pad = " " * max(0, self._interim_len - len(text))
        if not event.is_final:
            self._interim_len = len(text)
            return f"\r\x1b[2m{text}\x1b[0m{pad}"
        self._interim_len = 0
        return f"\r{text}{pad}" + ("\n" if event.speech_final or event.from_finalize else " ")


@hookimpl
def register_sink_types(register: RegisterSink) -> None:
    register(StdoutSink)
