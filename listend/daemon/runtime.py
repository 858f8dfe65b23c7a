"""The daemon: one TaskGroup with a named task per stream session, per sink, and the router."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import time

from listend.daemon.config import ListendConfig
from listend.daemon.delivery import SinkWorker, open_workers
from listend.daemon.errors import AuthError
from listend.daemon.plugins import PluginHost
from listend.daemon.router import Router
from listend.daemon.session import LOCAL, Endpoint, StreamSession
from listend.daemon.sinks import Sink
from listend.daemon.sources import PluginContext, Source

log = logging.getLogger(__name__)


def build_endpoint(config: ListendConfig) -> Endpoint:
    dg = config.deepgram
    if dg.uses_local_engine():  # the local engine's server replaces LOCAL with its URL
        return Endpoint(LOCAL, None, engine="local")
    if dg.access_token is not None:
        return Endpoint(dg.url or "https://api.deepgram.com", f"Bearer {dg.access_token.reveal()}")
    key = dg.effective_api_key()
    return Endpoint(dg.url or "https://api.deepgram.com", f"Token {key}" if key else None)


class Daemon:
    def __init__(self, config: ListendConfig, host: PluginHost) -> None:
        self.config = config
        self.host = host
        self.context = PluginContext(device=config.device, state_dir=config.state_dir)
        self.router = Router(
            {name: config.sinks_for(name) for name in config.sources},
            {name: sink.receive for name, sink in config.sinks.items()},
        )
        self.workers: dict[str, SinkWorker] = {}
        self.sessions: dict[str, StreamSession] = {}
        self.stopping = asyncio.Event()
        self.started_at = time.monotonic()
        self._finished: set[str] = set()

    def _make_sink(self, name: str) -> Sink:
        cfg = self.config.sinks[name]
        cls = self.host.sinks.get(cfg.type)
        assert cls is not None  # validated by the loader
        routed = tuple(
            source
            for source, source_cfg in self.config.sources.items()
            if source_cfg.enabled and name in self.config.sinks_for(source)
        )
        return cls(name, cfg, dataclasses.replace(self.context, sources=routed))

    def _make_source(self, name: str) -> Source:
        cfg = self.config.sources[name]
        cls = self.host.sources.get(cfg.type)
        assert cls is not None
        return cls(name, cfg, self.context)

    def _make_sessions(self) -> None:
        """Built before the TaskGroup: a bad source (missing file, unknown command) or a stream
        setting contradicting its format is then a plain ConfigError for the CLI, raised
        before anything connects."""
        endpoint = build_endpoint(self.config)
        for name, cfg in self.config.sources.items():
            if cfg.enabled:
                self.sessions[name] = StreamSession(
                    name=name,
                    device=self.config.device,
                    source=self._make_source(name),
                    options=cfg.stream.merged_over(self.config.deepgram.options),
                    deepgram=self.config.deepgram,
                    endpoint=endpoint,
                    publish=self.router.publish,
                )

    async def _run_session(self, session: StreamSession) -> None:
        try:
            await session.run()
        finally:
            self._finished.add(session.name)
        if session.failure is not None and not self._all_failed():
            log.error("source %s stopped: %s", session.name, session.failure)

    def _all_failed(self) -> bool:
        """Every source ended with an error: :meth:`run` raises it (one message, its exit code)."""
        sessions = self.sessions.values()
        return len(self._finished) == len(self.sessions) and all(s.failure for s in sessions)

    async def run(self) -> int:
        """Run until every source ends or :meth:`request_stop`; return the exit code."""
        self._make_sessions()
        for name, sink_cfg in self.config.sinks.items():
            if sink_cfg.enabled:
                self.workers[name] = SinkWorker(self._make_sink(name))
        await open_workers(self.workers.values())  # outboxes under state_dir; fails early
        async with asyncio.TaskGroup() as group:
            for name, worker in self.workers.items():
                self.router.attach(name, worker)
                group.create_task(worker.run(), name=f"listend[sink:{name}]")
            router_task = group.create_task(self.router.run(), name="listend[router]")
            session_tasks = [
                group.create_task(self._run_session(session), name=f"listend[source:{name}]")
                for name, session in self.sessions.items()
            ]
            stopper = group.create_task(self._stop_on_request(), name="listend[stop]")
            if session_tasks:
                await asyncio.wait(session_tasks)
            else:
                await self.stopping.wait()
            stopper.cancel()
            await self.router.close()
            await router_task
            for worker in self.workers.values():
                worker.close()
        if self.sessions and self._all_failed():
            failures = [s.failure for s in self.sessions.values() if s.failure is not None]
            raise next((f for f in failures if isinstance(f, AuthError)), failures[0])
        return 0

    async def _stop_on_request(self) -> None:
        await self.stopping.wait()
        for session in self.sessions.values():
            session.stop()

    def request_stop(self) -> None:
        self.stopping.set()


async def run_daemon(daemon: Daemon) -> int:
    """Run with signal handling: first SIGTERM/SIGINT drains, a second exits at once."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None

    def on_signal(signum: int) -> None:
        if daemon.stopping.is_set():
            log.warning("second %s: exiting without draining", signal.Signals(signum).name)
            main.cancel()
            return
        log.info("%s: draining (a second signal exits at once)", signal.Signals(signum).name)
        daemon.request_stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await daemon.run()
    except asyncio.CancelledError:
        if daemon.stopping.is_set():
            return 130
        raise
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
