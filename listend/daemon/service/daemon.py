"""The daemon: one TaskGroup with a named task per stream session, per sink, and the router.

Lifecycle: start sinks, router and sources; READY=1 once every source made its first
connection attempt; a reload restarts only what changed (see :mod:`reload`); a stop
drains (see :mod:`drain`). Signals and exit codes are :mod:`signals`'. The local engine, if the
config needs one, is injected (:mod:`local_engine`): the core imports no engine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Collection, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from listend.daemon.config.models import HealthConfig, ListendConfig
from listend.daemon.delivery.router import Router
from listend.daemon.delivery.worker import SinkWorker, open_workers
from listend.daemon.errors import AuthError, ListendError, PluginError
from listend.daemon.plugin.manager import PluginHost
from listend.daemon.plugin.sink import Sink
from listend.daemon.plugin.source import PluginContext, Source
from listend.daemon.service.control import Controls
from listend.daemon.service.control_socket import ControlServer, control_socket_path
from listend.daemon.service.drain import drain, settle
from listend.daemon.service.local_engine import LocalEndpoint, LocalEngineFactory, no_local_engine
from listend.daemon.service.metrics import Metrics
from listend.daemon.service.readiness import SinkState, first_signs, status_line
from listend.daemon.service.reload import apply_reload, routed_to, routes_of
from listend.daemon.service.sdnotify import Notifier, ProgressCheck, run_heartbeat, stall_check
from listend.daemon.service.sessions import new_session
from listend.daemon.stream.session import StreamSession
from listend.daemon.stream.spool import Spool
from listend.daemon.stream.stats import SessionStats

if TYPE_CHECKING:
    from listend.daemon.service.health import HealthServer
    from listend.daemon.wyoming.server import WyomingServer

log = logging.getLogger(__name__)

#: The router may sit on waiting events this long before the watchdog calls it wedged.
ROUTER_STALL_SECONDS = 60.0

ConfigLoader = Callable[[], ListendConfig]


class Daemon:
    def __init__(
        self,
        config: ListendConfig,
        host: PluginHost,
        *,
        reload_config: ConfigLoader | None = None,
        notifier: Notifier | None = None,
        on_reloaded: Callable[[ListendConfig], None] | None = None,
        local_engine: LocalEngineFactory = no_local_engine,
    ) -> None:
        self.config = config
        self.host = host
        self.reload_config = reload_config
        self.on_reloaded = on_reloaded
        self.notifier = notifier or Notifier({})
        self.control = Controls(config.state_dir, self)
        self.context = PluginContext(config.device, config.state_dir, control=self.control)
        self.router = Router(*routes_of(config))
        self.sinks: dict[str, Sink] = {}
        self.workers: dict[str, SinkWorker] = {}
        self.sessions: dict[str, StreamSession] = {}
        self.stopping = asyncio.Event()
        self.started_at = time.monotonic()
        self.metrics = Metrics(self)
        self._phase = "starting"
        self._tasks: dict[str, asyncio.Task[None]] = {}  # by task name
        self._group: asyncio.TaskGroup | None = None
        self._reload_wanted = asyncio.Event()
        self._sessions_changed = asyncio.Event()
        self._ended: set[str] = set()  # sources whose input ended by itself
        self._failed: set[str] = set()  # ... and those of them that ended with an error
        self._retiring: set[asyncio.Task[None]] = set()  # sessions a reload is replacing
        self._ready = asyncio.Event()
        self.health: HealthServer | None = None
        self.wyoming: WyomingServer | None = None
        self._local_engine = local_engine  # injected: the core knows no engine
        self.local_engine: LocalEndpoint | None = None  # runs while the config needs it
        self._checks: list[ProgressCheck] = [
            stall_check(
                "router",
                self.router.queue.qsize,
                lambda: self.router.forwarded,
                ROUTER_STALL_SECONDS,
            )
        ]

    # -- the probe health, metrics and STATUS= read ------------------------------------------

    @property
    def phase(self) -> str:
        return self._phase

    def stream_stats(self) -> Mapping[str, SessionStats]:
        """Running sessions, and failed ones: /readyz and STATUS= say why those are not up."""
        return {
            name: session.stats
            for name, session in self.sessions.items()
            if not self.task(f"source:{name}").done() or name in self._failed
        }

    def sink_states(self) -> Mapping[str, SinkState]:
        return {name: SinkState.of(worker) for name, worker in self.workers.items()}

    def stalls(self) -> list[str]:
        return [reason for check in self._checks if (reason := check()) is not None]

    def status(self) -> str:
        self.metrics.absorb()
        return status_line(self)

    # -- building blocks ------------------------------------------------------------------

    def task(self, key: str) -> asyncio.Task[None]:
        return self._tasks[f"listend[{key}]"]

    def _spawn(self, key: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        if self._group is None:
            raise RuntimeError(f"{key} started outside Daemon.run()")
        name = f"listend[{key}]"
        task = self._group.create_task(coro, name=name)
        self._tasks[name] = task
        return task

    def make_sink(self, config: ListendConfig, name: str) -> Sink:
        cfg = config.sinks[name]
        cls = self.host.sinks.get(cfg.type)
        if cls is None:  # the loader reports it first, with file and line
            raise PluginError(f"sink {name}: unknown type {cfg.type!r}")
        sources = routed_to(config, name)
        triggers = {source: tuple(config.triggers_for(source)) for source in sources}
        return cls(name, cfg, dataclasses.replace(self.context, sources=sources, triggers=triggers))

    def make_source(self, config: ListendConfig, name: str) -> Source:
        cfg = config.sources[name]
        cls = self.host.sources.get(cfg.type)
        if cls is None:
            raise PluginError(f"source {name}: unknown type {cfg.type!r}")
        return cls(name, cfg, self.context)

    def make_worker(self, sink: Sink) -> SinkWorker:
        return SinkWorker(sink)

    def make_session(self, config: ListendConfig, name: str) -> StreamSession:
        cfg = config.sources[name]
        source = self.make_source(config, name)
        session = new_session(
            config,
            name=name,
            source=source,
            options=cfg.stream,
            fallback_local=cfg.fallback == "local",
            engine=self.local_engine,
            publish=self.router.publisher,
            kinds=functools.partial(self.router.kinds_for, name),
            spool=Spool.of_source(config.state_dir, source, config.deepgram.spool_max_mb),
            triggers=config.triggers_for(name),
        )
        session.pause(name in self.control.paused)  # muted stays muted across restarts
        return session

    def start_worker(self, name: str, worker: SinkWorker) -> None:
        """Route to an (opened) worker and run it."""
        self.sinks[name], self.workers[name] = worker.sink, worker
        self.router.attach(name, worker)
        self._spawn(f"sink:{name}", worker.run())

    def start_session(self, session: StreamSession) -> None:
        self.sessions[session.name] = session
        self._ended.discard(session.name)
        self._failed.discard(session.name)
        task = self._spawn(f"source:{session.name}", self._run_session(session))

        def ended(task: asyncio.Task[None]) -> None:
            if task not in self._retiring:
                self._ended.add(session.name)
            self._retiring.discard(task)
            self._sessions_changed.set()

        task.add_done_callback(ended)

    async def _run_session(self, session: StreamSession) -> None:
        await session.run()
        if session.failure is not None:
            self._failed.add(session.name)
            if not self._all_failed():
                log.error("source %s stopped: %s", session.name, session.failure)

    def _all_failed(self) -> bool:
        """Every source ended with an error: :meth:`run` raises it (one message, its exit code)."""
        return bool(self.sessions) and set(self.sessions) <= self._failed

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until every source ends or :meth:`request_stop`; return the exit code."""
        async with self._local_engine(self.config) as engine:  # stopped after the sessions
            self.local_engine = engine
            return await self._run()

    async def _run(self) -> int:
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                try:
                    await self._start()
                    await self._until_done()
                finally:
                    self._phase = "stopping"
                    self.notifier.stopping()
                await self._drain()
                for name in ("ready", "heartbeat", "reloader", "wyoming", "control-socket"):
                    if (task := self._tasks.get(f"listend[{name}]")) is not None:
                        task.cancel()
        finally:
            if self.health is not None:
                await self.health.stop()
        if self._all_failed():
            failures = [s.failure for s in self.sessions.values() if s.failure is not None]
            raise next((f for f in failures if isinstance(f, AuthError)), failures[0])
        return 0

    async def _start(self) -> None:
        # Sessions first: a bad source (missing file, unknown command) or stream options that
        # contradict its format are a ConfigError before anything is opened or connects.
        config = self.config
        sessions = [
            self.make_session(config, name) for name, cfg in config.sources.items() if cfg.enabled
        ]
        workers = {
            name: self.make_worker(self.make_sink(config, name))
            for name, cfg in config.sinks.items()
            if cfg.enabled
        }
        if config.health is not None:
            from listend.daemon.service.health import HealthServer  # noqa: PLC0415 - aiohttp: 10 MB

            self.health = HealthServer(config.health, self, self.metrics)
            await self.health.start()
        if config.wyoming is not None:
            from listend.daemon.service.wyoming import wyoming_server  # noqa: PLC0415 - on demand

            self.wyoming = wyoming_server(config, self.context, lambda: self.local_engine)
            self._spawn("wyoming", self.wyoming.run())
        self._spawn(
            "heartbeat", run_heartbeat(self.notifier, checks=self._checks, status=self.status)
        )
        await open_workers(workers.values())  # outboxes under state_dir; fails early
        for name, worker in workers.items():
            self.start_worker(name, worker)
        self._spawn("router", self.router.run())
        for session in sessions:
            self.start_session(session)
        self._spawn("ready", self._announce_ready())
        self._spawn("reloader", self._reloader())
        self._spawn(
            "control-socket", ControlServer(self, control_socket_path(config.state_dir)).serve()
        )

    async def _announce_ready(self) -> None:
        """READY=1 once every source has made its first connection attempt (or ended)."""
        await asyncio.gather(
            *(
                first_signs(self.sessions[name].stats, self.task(f"source:{name}"))
                for name in list(self.sessions)
            )
        )
        if self._phase == "starting":
            self._phase = "running"
            self._ready.set()
            self.notifier.ready(self.status())
            log.info("ready: %s", self.status())

    async def _until_done(self) -> None:
        """Return on a stop request, or once every source ended on its own."""
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            while not stop.done():
                live = [t for n in self.sessions if not (t := self.task(f"source:{n}")).done()]
                if not live and self._ended:  # READY=1 says why (a refused key) before STOPPING
                    await asyncio.wait([self.task("ready")])
                    log.info("every source has ended; stopping")
                    return
                self._sessions_changed.clear()
                changed = asyncio.ensure_future(self._sessions_changed.wait())
                await asyncio.wait([stop, changed], return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
        finally:
            stop.cancel()

    async def _drain(self) -> None:
        """Stop sources, finalize streams, flush outboxes (see :mod:`drain`)."""
        await drain(
            sessions={n: (s, self.task(f"source:{n}")) for n, s in self.sessions.items()},
            router=(self.router, self.task("router")),
            workers={n: (w, self.task(f"sink:{n}")) for n, w in self.workers.items()},
            seconds=self.config.drain_timeout,
        )

    def request_stop(self) -> None:
        self.stopping.set()

    def request_reload(self) -> None:
        self._reload_wanted.set()

    # -- reload (see listend.daemon.service.reload) ------------------------------------

    async def _reloader(self) -> None:
        """Serve SIGHUPs one at a time; several during one reload make one more reload."""
        await self._ready.wait()  # a SIGHUP before READY=1 waits for it
        while True:
            await self._reload_wanted.wait()
            self._reload_wanted.clear()
            if not self.stopping.is_set():
                await self.reload()

    async def reload(self) -> bool:
        """Re-read the config and apply what changed; on any problem keep the running one."""
        if self.reload_config is None:
            log.warning("reload requested, but this daemon has no config file to re-read")
            return False
        self._phase = "reloading"
        self.notifier.reloading()
        ok = False
        try:
            new = await asyncio.to_thread(self.reload_config)
            await apply_reload(self, new)
            ok = True
        except Exception as exc:  # any: a bad file or a plugin's surprise must not end the daemon
            why = str(exc) if isinstance(exc, ListendError) else f"{type(exc).__name__}: {exc}"
            log.error("reload failed, still running the previous configuration: %s", why)  # noqa: TRY400
        finally:
            self.metrics.reloads["ok" if ok else "failed"] += 1
            if self._phase == "reloading":
                self._phase = "running"
            self.notifier.ready(self.status())
        return ok

    # -- what apply_reload does (its ReloadTarget) ---------------------------------------

    async def retire_sessions(
        self, names: list[str], *, restarting: Collection[str], grace: float
    ) -> None:
        """Finalize these streams for a reload; wait ``grace`` seconds, then cancel."""
        tasks = []
        for name in names:
            tasks.append(task := self.task(f"source:{name}"))
            self._retiring.add(task)
            self._ended.discard(name)
            self.sessions[name].stop()
        await settle(tasks, grace)
        for name in names:
            session = self.sessions.pop(name)
            if name in restarting:
                self.metrics.retire(name, session.stats)
            else:
                self.metrics.forget(name)

    async def retire_sinks(self, names: list[str]) -> dict[str, Sink]:
        await settle([self.task(f"sink:{name}") for name in names], 0)
        previous = {name: self.sinks[name] for name in names}
        for name in names:
            self.router.detach(name)
            del self.workers[name], self.sinks[name]
        return previous

    async def replace_health(self, config: HealthConfig | None) -> None:
        old = self.health
        if (old.config if old else None) == config:
            return
        if config is not None:
            from listend.daemon.service.health import HealthServer  # noqa: PLC0415 - aiohttp

            fresh = HealthServer(config, self, self.metrics)
            try:
                await fresh.start()
            except ListendError as exc:
                log.error("%s; keeping the previous health endpoint", exc)  # noqa: TRY400
                return
            self.health = fresh
        else:
            self.health = None
        if old is not None:
            await old.stop()

    def reloaded(self, config: ListendConfig) -> None:
        if self.on_reloaded is not None:
            self.on_reloaded(config)
