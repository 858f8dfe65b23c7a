"""What the daemon counts about itself, in the Prometheus text format (readiness and the
STATUS= line are :mod:`readiness`'s).

Everything is computed from the live objects when asked (a scrape, a heartbeat), from the
sessions' :class:`SessionStats` and the sink workers' counters, so nothing is counted twice.
Counters of a source restarted by a reload carry over, so they never go backwards.

prometheus_client (34 modules, about 0.4 MB once the SDK is loaded) is imported only when
/metrics is served (``health:``) and scraped: until then latencies are plain bucket counts.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric
    from prometheus_client.registry import Collector

from listend import __version__
from listend.daemon.service.readiness import DaemonProbe
from listend.daemon.stream.stats import SessionStats

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


@dataclass
class _Totals:
    """Counters of sessions that were replaced by a reload, added to the live ones."""

    connects: int = 0
    reconnects: int = 0
    keepalives: int = 0
    audio_seconds_sent: float = 0.0
    audio_seconds_captured: float = 0.0
    audio_seconds_gated_in: float = 0.0
    finals: int = 0
    gap_seconds: float = 0.0
    unspooled_seconds: float = 0.0

    def add(self, stats: SessionStats | _Totals) -> _Totals:
        return _Totals(
            self.connects + stats.connects,
            self.reconnects + stats.reconnects,
            self.keepalives + stats.keepalives,
            self.audio_seconds_sent + stats.audio_seconds_sent,
            self.audio_seconds_captured + stats.audio_seconds_captured,
            self.audio_seconds_gated_in + stats.audio_seconds_gated_in,
            self.finals + stats.finals,
            self.gap_seconds + stats.gap_seconds,
            self.unspooled_seconds + stats.unspooled_seconds,
        )


@dataclass
class _Latencies:
    """One source's final latencies as a histogram: counts per LATENCY_BUCKETS (+Inf last)."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds

    def buckets(self) -> list[tuple[str, float]]:
        bounds = [*(str(b) for b in LATENCY_BUCKETS), "+Inf"]
        cumulative, running = [], 0
        for bound, count in zip(bounds, self.counts, strict=True):
            running += count
            cumulative.append((bound, float(running)))
        return cumulative


class Metrics:
    """The Prometheus collector of one daemon; ``registry`` is what /metrics serves."""

    def __init__(self, probe: DaemonProbe) -> None:
        self.probe = probe
        self.reloads = {"ok": 0, "failed": 0}
        self._retired: dict[str, _Totals] = {}
        self._latencies: dict[str, _Latencies] = {}

    @cached_property
    def registry(self) -> CollectorRegistry:
        from prometheus_client import CollectorRegistry  # noqa: PLC0415 - only when served

        # auto_describe off: registering must not scrape a daemon that is still starting
        registry = CollectorRegistry(auto_describe=False)
        registry.register(cast("Collector", self))
        return registry

    def retire(self, source: str, stats: SessionStats) -> None:
        """A session is being replaced: keep its counters and latencies."""
        self._observe(source, stats)
        self._retired[source] = self._retired.get(source, _Totals()).add(stats)

    def forget(self, source: str) -> None:
        """The source was removed from the config: drop its series."""
        self._retired.pop(source, None)
        self._latencies.pop(source, None)

    def absorb(self) -> None:
        """Move the sessions' new final latencies into the histogram (bounds their lists)."""
        for source, stats in self.probe.stream_stats().items():
            self._observe(source, stats)

    def _observe(self, source: str, stats: SessionStats) -> None:
        latencies, stats.final_latencies[:] = list(stats.final_latencies), []
        if latencies:
            histogram = self._latencies.setdefault(source, _Latencies())
            for seconds in latencies:
                histogram.observe(seconds)

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import (  # noqa: PLC0415 - a scrape: loaded by then
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        self.absorb()
        now = time.monotonic()
        latency = HistogramMetricFamily(
            "listend_final_latency_seconds",
            "Seconds from the end of the audio of a final to its arrival",
            labels=["source"],
        )
        for source, histogram in sorted(self._latencies.items()):
            latency.add_metric([source], histogram.buckets(), histogram.total)
        yield latency
        yield from self._stream_metrics(now)
        yield from self._sink_metrics()
        info = GaugeMetricFamily("listend_info", "listend version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        reloads = CounterMetricFamily(
            "listend_reloads", "Configuration reloads (SIGHUP) by result", labels=["result"]
        )
        for result, count in sorted(self.reloads.items()):
            reloads.add_metric([result], count)
        yield reloads

    def _stream_metrics(self, now: float) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily  # noqa: PLC0415

        live = self.probe.stream_stats()
        names = sorted(set(live) | set(self._retired))

        def counter(name: str, doc: str, attr: str) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc, labels=["source"])
            for source in names:
                total = self._retired.get(source, _Totals())
                if source in live:
                    total = total.add(live[source])
                family.add_metric([source], getattr(total, attr))
            return family

        yield counter("listend_audio_sent_seconds", "Seconds of audio sent", "audio_seconds_sent")
        yield counter(
            "listend_audio_captured_seconds",
            "Seconds of audio read from the source",
            "audio_seconds_captured",
        )
        yield counter(
            "listend_audio_gated_in_seconds",
            "Seconds of captured audio the voice gate let through (all of it without vad:)",
            "audio_seconds_gated_in",
        )
        yield counter("listend_stream_connects", "Stream connections made", "connects")
        yield counter("listend_stream_reconnects", "Stream reconnections", "reconnects")
        yield counter("listend_stream_keepalives", "KeepAlive messages sent", "keepalives")
        yield counter("listend_finals", "Final transcripts received", "finals")
        yield counter(
            "listend_replay_gap_seconds",
            "Seconds of audio lost because the replay buffer overflowed during an outage",
            "gap_seconds",
        )
        yield counter(
            "listend_spool_overflow_seconds",
            "Seconds of audio not kept across a restart because the spool was full",
            "unspooled_seconds",
        )
        connected = GaugeMetricFamily(
            "listend_stream_connected", "1 while the stream is connected", labels=["source"]
        )
        age = GaugeMetricFamily(
            "listend_last_final_age_seconds", "Seconds since the last final", labels=["source"]
        )
        for source, stats in sorted(live.items()):
            connected.add_metric([source], 1 if stats.connected else 0)
            if stats.last_final_at is not None:
                age.add_metric([source], now - stats.last_final_at)
        yield connected
        yield age

    def _sink_metrics(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily  # noqa: PLC0415

        sinks = sorted(self.probe.sink_states().items())
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
            "delivered": CounterMetricFamily(
                "listend_sink_delivered", "Events confirmed by the sink", labels=["sink"]
            ),
            "failed": CounterMetricFamily(
                "listend_sink_failed", "Failed delivery attempts", labels=["sink"]
            ),
            "refused": CounterMetricFamily(
                "listend_outbox_refused",
                "Events not stored because the outbox could not be written (a full disk)",
                labels=["sink"],
            ),
            "depth": GaugeMetricFamily(
                "listend_outbox_depth", "Events waiting in the outbox", labels=["sink"]
            ),
            "reachable": GaugeMetricFamily(
                "listend_sink_reachable", "1 while the sink can deliver", labels=["sink"]
            ),
        }
        for name, state in sinks:
            for attr, family in families.items():
                family.add_metric([name], float(getattr(state, attr)))
        yield from families.values()
