"""The opt-in HTTP endpoint: /healthz (loop alive), /readyz (streams and sinks up), /metrics.

It is served by the daemon's own event loop, so an answer from /healthz proves the loop runs.
Bind it to loopback (the default) unless something else guards the port.
"""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from listend.daemon.config.models import HealthConfig
from listend.daemon.errors import ListendError
from listend.daemon.service.metrics import Metrics
from listend.daemon.service.readiness import DaemonProbe, readiness

log = logging.getLogger(__name__)


class HealthServer:
    """An aiohttp server for one :class:`DaemonProbe`; ``start()`` binds, ``stop()`` closes."""

    def __init__(self, config: HealthConfig, probe: DaemonProbe, metrics: Metrics) -> None:
        self.config = config
        self.probe = probe
        self.metrics = metrics
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.prometheus)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ListendError(
                f"health endpoint: cannot listen on {self.config.listen}: {exc}"
            ) from exc
        log.info("health and metrics on http://%s/ (healthz, readyz, metrics)", self.config.listen)

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def healthz(self, _request: web.Request) -> web.Response:
        stalls = self.probe.stalls()
        if stalls:
            return web.json_response({"alive": False, "reasons": stalls}, status=503)
        return web.json_response({"alive": True, "phase": self.probe.phase})

    async def readyz(self, _request: web.Request) -> web.Response:
        reasons = readiness(self.probe)
        body = {
            "ready": not reasons,
            "reasons": reasons,
            "phase": self.probe.phase,
            "streams": {
                name: {"connected": stats.connected, "reconnects": stats.reconnects}
                for name, stats in sorted(self.probe.stream_stats().items())
            },
            "sinks": {
                name: {"reachable": state.reachable, "outbox": state.depth}
                for name, state in sorted(self.probe.sink_states().items())
            },
        }
        return web.json_response(body, status=503 if reasons else 200)

    async def prometheus(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
