"""What a SIGHUP reload has to restart: the difference between the running and the new config.

Only what changed is touched. A source restarts when its own settings, its merged stream
options or the Deepgram connection settings changed; a sink when its own settings changed.
Which sinks a source feeds (``sources.*.sinks``) and which event kinds a sink receives
(``sinks.*.receive``) are routing, applied in the router without restarting anything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import BaseModel

from listend.daemon.config import ListendConfig
from listend.daemon.errors import ListendError
from listend.daemon.events import EventKind
from listend.daemon.health import HealthServer

if TYPE_CHECKING:
    from listend.daemon.runtime import Daemon

log = logging.getLogger(__name__)

#: Settings a reload cannot change: event ids and outbox files depend on them.
RESTART_ONLY = ("device", "state_dir")
#: Extra time a restarting stream gets beyond ``deepgram.finalize_timeout`` to end.
SESSION_STOP_GRACE = 5.0


@dataclass
class ReloadPlan:
    """Names to stop and to start (a changed one is in both), in the new config's order."""

    stop_sources: list[str] = field(default_factory=list)
    start_sources: list[str] = field(default_factory=list)
    stop_sinks: list[str] = field(default_factory=list)
    start_sinks: list[str] = field(default_factory=list)
    #: Why the new config cannot be applied without a restart (empty: it can).
    refused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = []
        for verb, kind, stop, start in (
            ("restarted", "source", self.stop_sources, self.start_sources),
            ("restarted", "sink", self.stop_sinks, self.start_sinks),
        ):
            both = [n for n in start if n in stop]
            added = [n for n in start if n not in stop]
            removed = [n for n in stop if n not in start]
            for label, names in ((verb, both), ("started", added), ("stopped", removed)):
                if names:
                    parts.append(f"{label} {kind}s {', '.join(names)}")
        return "; ".join(parts) or "no source or sink changed"


def _fields(model: BaseModel, exclude: Iterable[str] = ()) -> tuple[type, dict[str, object]]:
    """Compare by attribute, not by dump: a dump shows a secret's reference, not its value."""
    skip = set(exclude)
    return type(model), {
        name: getattr(model, name) for name in type(model).model_fields if name not in skip
    }


def _deepgram_connection(config: ListendConfig) -> tuple[type, dict[str, object]]:
    # options reach each source through its merged stream options, compared separately
    return _fields(config.deepgram, exclude=("options",))


def plan_reload(old: ListendConfig, new: ListendConfig) -> ReloadPlan:
    plan = ReloadPlan()
    for name in RESTART_ONLY:
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            plan.refused.append(
                f"{name} changed ({before} -> {after}); it takes effect only on restart "
                "(systemctl restart listend)"
            )
    connection_changed = _deepgram_connection(old) != _deepgram_connection(new)

    def source_key(config: ListendConfig, name: str) -> object:
        source = config.sources[name]
        merged = source.stream.merged_over(config.deepgram.options)
        return _fields(source, exclude=("sinks",)), merged

    def running_sources(config: ListendConfig) -> list[str]:
        return [name for name, source in config.sources.items() if source.enabled]

    old_sources, new_sources = running_sources(old), running_sources(new)
    for name in old_sources:
        if (
            name not in new_sources
            or connection_changed
            or source_key(old, name) != source_key(new, name)
        ):
            plan.stop_sources.append(name)
    plan.start_sources = [
        name for name in new_sources if name not in old_sources or name in plan.stop_sources
    ]

    def running_sinks(config: ListendConfig) -> list[str]:
        return [name for name, sink in config.sinks.items() if sink.enabled]

    old_sinks, new_sinks = running_sinks(old), running_sinks(new)
    for name in old_sinks:
        changed = name in new_sinks and _fields(old.sinks[name], exclude=("receive",)) != _fields(
            new.sinks[name], exclude=("receive",)
        )
        if name not in new_sinks or changed:
            plan.stop_sinks.append(name)
    plan.start_sinks = [
        name for name in new_sinks if name not in old_sinks or name in plan.stop_sinks
    ]
    return plan


def routes_of(config: ListendConfig) -> tuple[dict[str, list[str]], dict[str, list[EventKind]]]:
    """The router's tables: sinks per source, event kinds per sink."""
    routes = {name: config.sinks_for(name) for name in config.sources}
    return routes, {name: list(sink.receive) for name, sink in config.sinks.items()}


async def settle(tasks: Iterable[asyncio.Task[None]], limit: float | None) -> None:
    """Wait for ``tasks`` up to ``limit`` seconds, then cancel the rest and wait for them.

    ``asyncio.wait`` never raises the tasks' own cancellation into the caller, so a caller
    that is itself cancelled still notices, and the TaskGroup reports the tasks' real errors.
    """
    pending = {task for task in tasks if not task.done()}
    if not pending:
        return
    _done, late = await asyncio.wait(pending, timeout=limit)
    for task in late:
        task.cancel()
    if late:
        await asyncio.wait(late)


async def apply_reload(daemon: Daemon, new: ListendConfig) -> None:
    """Switch ``daemon`` to ``new``, restarting only what changed; raise ListendError if not."""
    plan = plan_reload(daemon.config, new)
    if plan.refused:
        raise ListendError("; ".join(plan.refused))
    # Build everything new first: a plugin refusing its config aborts with nothing changed.
    sinks = {name: daemon.make_sink(new, name) for name in plan.start_sinks}
    sessions = [
        daemon.make_session(new, name, daemon.make_source(new, name)) for name in plan.start_sources
    ]
    # Finalize the streams that restart; their last events still reach the current sinks.
    grace = daemon.config.deepgram.finalize_timeout + SESSION_STOP_GRACE
    await settle([daemon.stop_session(name) for name in plan.stop_sources], grace)
    for name in plan.stop_sources:
        session = daemon.sessions.pop(name)
        if name in plan.start_sources:
            daemon.metrics.retire(name, session.stats)
        else:
            daemon.metrics.forget(name)
    async with daemon.router.paused():
        # A changed sink stops without flushing: what is queued stays in its outbox (kept by
        # sink name in the state directory) and the new worker delivers it, new settings.
        await settle([daemon.task(f"sink:{name}") for name in plan.stop_sinks], 0)
        for name in plan.stop_sinks:
            daemon.router.detach(name)
            del daemon.workers[name], daemon.sinks[name]
        for name, sink in sinks.items():
            daemon.start_sink(name, sink)
        daemon.router.set_routes(*routes_of(new))
    daemon.config = new
    for session in sessions:
        daemon.start_session(session)
    await _reload_health(daemon, new)
    if daemon.on_reloaded is not None:
        daemon.on_reloaded(new)
    log.info("reloaded: %s", plan.summary())


async def _reload_health(daemon: Daemon, new: ListendConfig) -> None:
    old = daemon.health
    if (old.config if old else None) == new.health:
        return
    if new.health is not None:
        fresh = HealthServer(new.health, daemon, daemon.metrics)
        try:
            await fresh.start()
        except ListendError as exc:
            log.error("%s; keeping the previous health endpoint", exc)  # noqa: TRY400
            return
        daemon.health = fresh
    else:
        daemon.health = None
    if old is not None:
        await old.stop()
