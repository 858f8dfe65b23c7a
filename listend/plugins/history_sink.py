"""The ``history`` sink: finals and phrase events kept on the device, searchable.

``listend search`` (and the captions page's ``/search``) read what it stores
(:mod:`listend.plugins.history_store`). All database work runs in the sink's own thread, so a
slow disk never blocks the event loop; the delivery worker batches events (up to
``max_batch`` per transaction) and the outbox holds them meanwhile, so the stream never waits
for the history. Retention (``max_age``, ``max_mb``) runs after a write at most every
``PRUNE_EVERY`` seconds.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, field_validator

from listend.api import (
    AnyEvent,
    DeliveryError,
    EventKind,
    PluginContext,
    Sink,
    SinkConfig,
)
from listend.plugins.history_store import HistoryStore, parse_duration

log = logging.getLogger(__name__)

PRUNE_EVERY = 10.0  # seconds between retention passes
T = TypeVar("T")


def _default_receive() -> list[EventKind]:
    return ["final", "phrase"]


class HistorySinkConfig(SinkConfig):
    receive: list[EventKind] = Field(
        default_factory=_default_receive, description="what is stored: finals and phrase events"
    )
    path: str = Field(default="history.sqlite3", description="the database; relative to state_dir")
    max_age: float | None = Field(
        default=30 * 86400.0,
        gt=0,
        le=100 * 365 * 86400.0,
        description="delete entries older than this (seconds, or 90s/15m/2h/30d/1w); null: keep",
    )
    max_mb: float | None = Field(
        default=512.0,
        gt=0,
        le=1024 * 1024,
        description="keep the database under this size (oldest go first)",
    )
    batch: int = Field(default=500, ge=1, le=10000, description="events per transaction at most")

    @field_validator("max_age", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value


def history_path(config: HistorySinkConfig, state_dir: Path) -> Path:
    path = Path(config.path)
    return path if path.is_absolute() else state_dir / path


class HistorySink(Sink):
    type_name = "history"
    config_model = HistorySinkConfig
    config: HistorySinkConfig

    def __init__(self, name: str, config: Any, context: PluginContext) -> None:
        super().__init__(name, config, context)
        self.max_batch = self.config.batch
        self.path = history_path(self.config, context.state_dir)
        self._executor: ThreadPoolExecutor | None = None
        self._store: HistoryStore | None = None
        self._pruned_at = 0.0

    async def _in_thread(self, func: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                1, thread_name_prefix=f"listend-history-{self.name}"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(func, *args))

    async def start(self) -> None:
        self._store = await self._in_thread(HistoryStore, self.path)
        await self._prune()
        log.info("sink %s: history in %s", self.name, self.path)

    async def deliver(self, events: Sequence[AnyEvent]) -> None:
        if self._store is None:
            raise DeliveryError("history database not open")
        try:
            await self._in_thread(self._store.add, events)
        except OSError as exc:
            raise DeliveryError(f"history: {exc}") from None
        if time.monotonic() - self._pruned_at >= PRUNE_EVERY:
            await self._prune()

    async def _prune(self) -> None:
        self._pruned_at = time.monotonic()
        store, cfg = self._store, self.config
        if store is None:
            return
        max_bytes = None if cfg.max_mb is None else int(cfg.max_mb * 1024 * 1024)
        deleted = await self._in_thread(
            functools.partial(store.prune, max_age=cfg.max_age, max_bytes=max_bytes)
        )
        if deleted:
            log.info("sink %s: retention removed %d entries", self.name, deleted)

    async def stop(self) -> None:
        if self._store is not None:
            await self._in_thread(self._store.close)
            self._store = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
