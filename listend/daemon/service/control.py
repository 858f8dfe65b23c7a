"""The daemon's side of :class:`~listend.daemon.plugin.control.DaemonControl`.

Paused sources are kept in ``state_dir/paused.json``, so a source muted from Home Assistant
stays muted across a restart from its first second, before any broker is reachable.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from listend.daemon.delivery.worker import SinkWorker
from listend.daemon.plugin.control import StreamStatus
from listend.daemon.stream.session import StreamSession

log = logging.getLogger(__name__)


class Running(Protocol):
    """What runs in the daemon (the :class:`~listend.daemon.service.daemon.Daemon`)."""

    sessions: dict[str, StreamSession]
    workers: dict[str, SinkWorker]


class Controls:
    def __init__(self, state_dir: Path, running: Running) -> None:
        self.path = state_dir / "paused.json"
        self.running = running
        self.paused: set[str] = self._load()
        self._today: dict[str, tuple[dt.date, float]] = {}  # source -> (day, sent at its start)

    def _load(self) -> set[str]:
        try:
            names = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return set()
        except (OSError, ValueError) as exc:
            log.warning("%s unreadable (%s): no source starts paused", self.path, exc)
            return set()
        return {str(name) for name in names} if isinstance(names, list) else set()

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(sorted(self.paused)), encoding="utf-8")
            tmp.replace(self.path)
        except OSError as exc:
            log.warning("cannot keep the paused sources in %s: %s", self.path, exc)

    def sources(self) -> Sequence[str]:
        return sorted(self.running.sessions)

    def sinks(self) -> Sequence[str]:
        return sorted(self.running.workers)

    def stream_status(self, source: str) -> StreamStatus | None:
        session = self.running.sessions.get(source)
        if session is None:
            return None
        stats = session.stats
        last = stats.last_final_at
        return StreamStatus(
            connected=stats.connected,
            engine=session.factory.engine,
            last_final_age=None if last is None else time.monotonic() - last,
            seconds_streamed_today=self._streamed_today(source, stats.audio_seconds_sent),
            paused=session.paused,
        )

    def _streamed_today(self, source: str, sent: float) -> float:
        today = dt.datetime.now().astimezone().date()
        day, base = self._today.get(source, (today, 0.0))
        if day != today or sent < base:  # a new day, or a new session (a reload) counting anew
            day, base = today, sent if day != today else 0.0
        self._today[source] = (day, base)
        return sent - base

    def set_paused(self, source: str, paused: bool) -> bool:  # noqa: FBT001 - a switch
        session = self.running.sessions.get(source)
        if session is None:
            return False
        if session.paused != paused:
            log.info("source %s: %s", source, "paused" if paused else "resumed")
        session.pause(paused)
        before = set(self.paused)
        (self.paused.add if paused else self.paused.discard)(source)
        if self.paused != before:
            self._save()
        return True

    def outbox_depth(self, sink: str) -> int | None:
        worker = self.running.workers.get(sink)
        return None if worker is None else worker.depth()

    def page_url(self) -> str | None:
        pages = (w.sink.page_url() for _, w in sorted(self.running.workers.items()))
        return next((url for url in pages if url is not None), None)
