"""Caption lines assembled from transcript events: what every captions page shows.

The server assembles lines (not the page) so a page that connects late, or reconnects after a
dropped socket, gets exactly the state the others show: the recent committed lines per source
and each source's open line.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from listend.api import AnyEvent, TranscriptEvent, UtteranceEndEvent

#: An open line is committed at the next final once it is this long, even without
#: ``speech_final`` (endpointing off): every update re-sends the whole open line.
MAX_OPEN_LINE_CHARS = 240

LineKey = tuple[str, int]  # (source, channel)


@dataclass
class CaptionLine:
    """One caption line: confirmed text, the interim hypothesis after it, and whether it ended."""

    id: int
    source: str
    channel: int
    epoch: int
    final: str = ""
    interim: str = ""
    done: bool = False

    def message(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "src": self.source,
            "ch": self.channel,
            "final": self.final,
            "interim": self.interim,
            "done": self.done,
        }


@dataclass
class CaptionBoard:
    """Turns events into line updates and keeps a short history of committed lines per source."""

    history: int = 50
    _next_id: int = 1
    _open: dict[LineKey, CaptionLine] = field(default_factory=dict)
    _done: dict[str, deque[CaptionLine]] = field(default_factory=dict)

    def apply(self, event: AnyEvent) -> list[CaptionLine]:
        """Apply one event; return the lines it changed (each to be pushed to the pages)."""
        key = (event.source, event.channel)
        changed: list[CaptionLine] = []
        line = self._open.get(key)
        if line is not None and line.epoch != event.epoch:
            # The source restarted: its old hypothesis will never be confirmed.
            changed.append(self._commit(line))
            line = None
        if isinstance(event, UtteranceEndEvent):
            if line is not None:
                changed.append(self._commit(line))
        elif isinstance(event, TranscriptEvent):
            changed.extend(self._transcript(key, line, event))
        return changed

    def _transcript(
        self, key: LineKey, line: CaptionLine | None, event: TranscriptEvent
    ) -> list[CaptionLine]:
        text = event.text.strip()
        if line is None:
            if not text:
                return []
            line = self._new_line(key, event.epoch)
        if not event.is_final:
            line.interim = text
            return [line]
        line.interim = ""
        if text:
            line.final = f"{line.final} {text}" if line.final else text
        ends = event.speech_final or event.from_finalize
        if ends or len(line.final) >= MAX_OPEN_LINE_CHARS:
            return [self._commit(line)]
        return [line]

    def _new_line(self, key: LineKey, epoch: int) -> CaptionLine:
        line = CaptionLine(id=self._next_id, source=key[0], channel=key[1], epoch=epoch)
        self._next_id += 1
        self._open[key] = line
        return line

    def _commit(self, line: CaptionLine) -> CaptionLine:
        line.interim = ""
        line.done = True
        self._open.pop((line.source, line.channel), None)
        if line.final:
            done = self._done.setdefault(line.source, deque(maxlen=self.history))
            done.append(line)
        return line

    def sources(self) -> list[str]:
        return sorted({*self._done, *(source for source, _ in self._open)})

    def snapshot(self, source: str | None = None) -> list[CaptionLine]:
        """Recent committed lines and open lines, oldest first: one source, or all of them."""
        sources = [source] if source is not None else list(self._done)
        lines = [line for name in sources for line in self._done.get(name, ())]
        lines.extend(
            line for line in self._open.values() if source is None or line.source == source
        )
        lines.sort(key=lambda line: line.id)
        return lines[-self.history :]
