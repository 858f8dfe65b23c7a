"""What a SIGHUP reload has to restart: the difference between the running and the new config.

Only what changed is touched. A source restarts when its own settings, its merged stream
options or the Deepgram connection settings changed; a sink when its own settings or the
set of sources routed to it changed (sinks are told their sources at start). Which event
kinds a sink receives, and the routes themselves, are applied in the router.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel

from listend.daemon.config.models import HealthConfig, ListendConfig
from listend.daemon.delivery.router import Router
from listend.daemon.delivery.worker import SinkWorker
from listend.daemon.errors import ListendError
from listend.daemon.events import EventKind
from listend.daemon.plugin.sink import Sink
from listend.daemon.stream.session import StreamSession

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


def _diff(
    old: list[str], new: list[str], changed: Callable[[str], bool]
) -> tuple[list[str], list[str]]:
    """(to stop, to start): removed or changed, then added or changed, each in config order."""
    stop = [name for name in old if name not in new or changed(name)]
    return stop, [name for name in new if name not in old or name in stop]


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
        merged = config.stream_options_for(name)
        return _fields(source, exclude=("sinks",)), merged, config.triggers_for(name)

    def sink_key(config: ListendConfig, name: str) -> object:
        # a sink is told its sources at start (e.g. for Home Assistant discovery)
        sources = routed_to(config, name)  # and their triggers (discovery's event types)
        triggers = [tuple(config.triggers_for(source)) for source in sources]
        return _fields(config.sinks[name], exclude=("receive",)), sources, triggers

    plan.stop_sources, plan.start_sources = _diff(
        [name for name, source in old.sources.items() if source.enabled],
        [name for name, source in new.sources.items() if source.enabled],
        lambda name: connection_changed or source_key(old, name) != source_key(new, name),
    )
    plan.stop_sinks, plan.start_sinks = _diff(
        [name for name, sink in old.sinks.items() if sink.enabled],
        [name for name, sink in new.sinks.items() if sink.enabled],
        lambda name: sink_key(old, name) != sink_key(new, name),
    )
    return plan


def routed_to(config: ListendConfig, sink: str) -> tuple[str, ...]:
    """The running sources whose events go to ``sink`` (a sink is told them at start)."""
    return tuple(
        name
        for name, source in config.sources.items()
        if source.enabled and sink in config.sinks_for(name)
    )


def routes_of(config: ListendConfig) -> tuple[dict[str, list[str]], dict[str, list[EventKind]]]:
    """The router's tables: sinks per source, event kinds per sink."""
    routes = {name: config.sinks_for(name) for name in config.sources}
    return routes, {name: list(sink.receive) for name, sink in config.sinks.items()}


class ReloadTarget(Protocol):
    """What :func:`apply_reload` does to the daemon, which implements it."""

    config: ListendConfig  # the running configuration

    @property
    def router(self) -> Router: ...

    def make_sink(self, config: ListendConfig, name: str) -> Sink: ...

    def make_session(self, config: ListendConfig, name: str) -> StreamSession: ...

    def make_worker(self, sink: Sink) -> SinkWorker: ...

    async def retire_sessions(
        self, names: list[str], *, restarting: Collection[str], grace: float
    ) -> None:
        """Finalize these streams (their last events still reach the current sinks)."""

    async def retire_sinks(self, names: list[str]) -> dict[str, Sink]:
        """Stop these workers without flushing and detach them; returns their sinks."""

    def start_worker(self, name: str, worker: SinkWorker) -> None: ...

    def start_session(self, session: StreamSession) -> None: ...

    async def replace_health(self, config: HealthConfig | None) -> None:
        """Serve health at ``config`` now, if it differs from what is served."""

    def reloaded(self, config: ListendConfig) -> None:
        """Tell whoever asked that ``config`` is now running (e.g. the CLI's log level)."""


async def apply_reload(daemon: ReloadTarget, new: ListendConfig) -> None:
    """Switch ``daemon`` to ``new``, restarting only what changed; raise ListendError if not."""
    old = daemon.config
    plan = plan_reload(old, new)
    if plan.refused:
        raise ListendError("; ".join(plan.refused))
    # Build everything new first: a plugin refusing its config aborts with nothing changed.
    sinks = {name: daemon.make_sink(new, name) for name in plan.start_sinks}
    sessions = [daemon.make_session(new, name) for name in plan.start_sources]
    # Finalize the streams that restart; their last events still reach the current sinks.
    grace = old.deepgram.finalize_timeout + SESSION_STOP_GRACE
    await daemon.retire_sessions(plan.stop_sources, restarting=plan.start_sources, grace=grace)
    async with daemon.router.paused():
        # A changed sink stops without flushing: what is queued stays in its outbox (kept by
        # sink name in the state directory) and the new worker delivers it, new settings.
        previous = await daemon.retire_sinks(plan.stop_sinks)
        for name, sink in sinks.items():
            worker = await _open_or_fall_back(daemon, old, sink, previous.get(name))
            if worker is not None:
                daemon.start_worker(name, worker)
        daemon.router.set_routes(*routes_of(new))
    daemon.config = new
    for session in sessions:
        daemon.start_session(session)
    await daemon.replace_health(new.health)
    daemon.reloaded(new)
    log.info("reloaded: %s", plan.summary())


async def _open_or_fall_back(
    daemon: ReloadTarget, old: ListendConfig, sink: Sink, previous: Sink | None
) -> SinkWorker | None:
    """Open a sink's new worker; if its new settings fail to start, go back to the old ones."""
    worker = daemon.make_worker(sink)
    try:
        await worker.open()
    except Exception as exc:  # a plugin's start(): anything it raises is its complaint
        if previous is None:
            log.error("sink %s: cannot start, not running: %s", sink.name, exc)  # noqa: TRY400
            return None
        log.error(  # noqa: TRY400
            "sink %s: cannot start with the new settings, keeping the previous ones: %s",
            sink.name,
            exc,
        )
        worker = daemon.make_worker(daemon.make_sink(old, sink.name))
        await worker.open()
    return worker
