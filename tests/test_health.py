"""The health endpoint over real HTTP: /healthz, /readyz reasons, /metrics parsed back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from listend.daemon.config.models import HealthConfig, ListendConfig, split_listen
from listend.daemon.errors import ListendError
from listend.daemon.service.health import HealthServer
from listend.daemon.service.metrics import Metrics
from listend.daemon.service.readiness import SinkState, readiness, status_line
from listend.daemon.stream.stats import SessionStats
from tests.support.net import free_port


@dataclass
class Probe:
    """A daemon's state, set by the test (the shape Daemon exposes)."""

    phase: str = "running"
    streams: dict[str, SessionStats] = field(default_factory=dict)
    sinks: dict[str, SinkState] = field(default_factory=dict)
    stuck: list[str] = field(default_factory=list)

    def stream_stats(self) -> Mapping[str, SessionStats]:
        return self.streams

    def sink_states(self) -> Mapping[str, SinkState]:
        return self.sinks

    def stalls(self) -> list[str]:
        return self.stuck


def healthy_probe() -> Probe:
    hall = SessionStats(connected=True, connects=2, reconnects=1, keepalives=4, finals=3)
    hall.audio_seconds_sent = 12.5
    hall.gap_seconds = 0.5
    hall.last_final_at = time.monotonic() - 2
    hall.last_audio_at = time.monotonic()
    hall.final_latencies.extend([0.2, 0.4, 1.2])
    return Probe(
        streams={"hall": hall},
        sinks={"mqtt": SinkState(depth=3, delivered=10, failed=2, reachable=True)},
    )


async def fetch(port: int, path: str) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, response.headers["Content-Type"], await response.text()


def serve(probe: Probe, scenario) -> None:
    port = free_port()

    async def run() -> None:
        metrics = Metrics(probe)
        server = HealthServer(HealthConfig(listen=f"127.0.0.1:{port}"), probe, metrics)
        await server.start()
        try:
            await scenario(port, metrics)
        finally:
            await server.stop()

    asyncio.run(run())


def test_readyz_reports_why_and_turns_ready() -> None:
    probe = healthy_probe()

    async def scenario(port: int, _metrics: Metrics) -> None:
        status, kind, body = await fetch(port, "/readyz")
        assert status == 200
        assert kind.startswith("application/json")
        assert '"ready": true' in body
        probe.streams["hall"].connected = False
        probe.streams["hall"].stream_error = "Deepgram refused the credentials"
        probe.sinks["mqtt"] = SinkState(depth=3, delivered=10, failed=3, reachable=False)
        probe.sinks["http"] = SinkState(0, 0, 1, reachable=True, problem="HTTP 500 from x")
        status, _kind, body = await fetch(port, "/readyz")
        assert status == 503
        assert '"stream hall: not connected (Deepgram refused the credentials)"' in body
        assert '"sink mqtt: unreachable"' in body
        assert '"sink http: HTTP 500 from x"' in body
        probe.streams["hall"].connected = True
        probe.streams["hall"].last_audio_at = time.monotonic() - 60
        assert '"source hall: no audio for 60s"' in (await fetch(port, "/readyz"))[2]
        assert (await fetch(port, "/healthz"))[0] == 200  # alive, just not ready
        probe.stuck.append("router: 5 waiting, none moved for 90s")
        status, _kind, body = await fetch(port, "/healthz")
        assert status == 503
        assert "router: 5 waiting" in body

    serve(probe, scenario)


def test_metrics_parse_with_prometheus_parser() -> None:
    probe = healthy_probe()

    async def scenario(port: int, metrics: Metrics) -> None:
        metrics.reloads["ok"] += 1
        status, kind, body = await fetch(port, "/metrics")
        assert status == 200
        assert kind.startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(body)}
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in families.values()
            for s in f.samples
        }
        source, sink = (("source", "hall"),), (("sink", "mqtt"),)
        assert samples["listend_audio_sent_seconds_total", source] == 12.5
        assert samples["listend_stream_connected", source] == 1
        assert samples["listend_stream_reconnects_total", source] == 1
        assert samples["listend_stream_keepalives_total", source] == 4
        assert samples["listend_finals_total", source] == 3
        assert samples["listend_replay_gap_seconds_total", source] == 0.5
        assert samples["listend_final_latency_seconds_count", source] == 3
        assert samples["listend_final_latency_seconds_bucket", (("le", "0.25"), *source)] == 1
        assert samples["listend_sink_delivered_total", sink] == 10
        assert samples["listend_sink_failed_total", sink] == 2
        assert samples["listend_outbox_depth", sink] == 3
        assert samples["listend_reloads_total", (("result", "ok"),)] == 1
        assert probe.streams["hall"].final_latencies == []  # drained into the histogram

    serve(probe, scenario)


def test_counters_survive_a_restarted_session() -> None:
    probe = healthy_probe()
    metrics = Metrics(probe)
    metrics.retire("hall", probe.streams["hall"])
    probe.streams["hall"] = SessionStats(connected=True, finals=1)
    body = _scrape(metrics)
    assert 'listend_finals_total{source="hall"} 4.0' in body
    metrics.forget("hall")
    del probe.streams["hall"]
    assert 'source="hall"' not in _scrape(metrics)


def _scrape(metrics: Metrics) -> str:
    from prometheus_client import generate_latest  # noqa: PLC0415

    return generate_latest(metrics.registry).decode()


def test_status_line_is_short_and_true() -> None:
    probe = healthy_probe()
    probe.streams["door"] = SessionStats()
    hall_final = probe.streams["hall"].last_final_at
    assert hall_final is not None
    line = status_line(probe, now=hall_final + 7)
    assert line == (
        "1/2 streams up, 1/1 sinks up, outbox 3, last final 7s ago; "
        "not up: source door: no audio yet; stream door: not connected"
    )
    probe.phase = "stopping"
    assert status_line(probe, now=hall_final).startswith("stopping: 1/2 streams up")
    assert readiness(probe)[0] == "daemon is stopping"


def test_listen_address_forms() -> None:
    assert split_listen("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert split_listen("[::1]:9000") == ("::1", 9000)
    for bad in ("9464", "localhost", "host:0", "host:http", ":80"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            split_listen(bad)
    assert ListendConfig().health is None  # opt-in
    assert ListendConfig.model_validate({"health": {}}).health == HealthConfig(
        listen="127.0.0.1:9464"
    )


def test_busy_port_is_a_clear_error() -> None:
    probe = Probe()

    async def scenario(port: int, metrics: Metrics) -> None:
        second = HealthServer(HealthConfig(listen=f"127.0.0.1:{port}"), probe, metrics)
        with pytest.raises(ListendError, match=f"cannot listen on 127.0.0.1:{port}"):
            await second.start()

    serve(probe, scenario)
