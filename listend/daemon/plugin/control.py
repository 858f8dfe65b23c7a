"""What a sink may know of the daemon and change in it: stream status, pause, outbox depth.

Sinks (Home Assistant's switch and diagnostics over MQTT) get this through
:attr:`PluginContext.control <listend.daemon.plugin.source.PluginContext>`, never by importing
the daemon, so the core can change behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """One source's stream, as the daemon sees it now."""

    connected: bool
    engine: str  # "deepgram" or "local": where its audio goes
    last_final_age: float | None  # seconds since its last final; None before the first
    seconds_streamed_today: float  # audio sent since local midnight (what Deepgram bills)
    paused: bool


class DaemonControl(Protocol):
    def sources(self) -> Sequence[str]:
        """The sources that run now."""
        ...

    def sinks(self) -> Sequence[str]:
        """The sinks that run now."""
        ...

    def stream_status(self, source: str) -> StreamStatus | None:
        """None for a source that does not run."""
        ...

    def set_paused(self, source: str, paused: bool) -> bool:  # noqa: FBT001 - a switch
        """Pause or resume a source (kept across restarts); False if there is no such source."""
        ...

    def outbox_depth(self, sink: str) -> int | None:
        """Events waiting in a sink's outbox; None for a sink that does not run."""
        ...

    def page_url(self) -> str | None:
        """The captions page (the first sink serving a page to other machines), if any."""
        ...
