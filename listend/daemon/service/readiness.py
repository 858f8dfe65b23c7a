"""Whether the daemon is ready, and the STATUS= line: what is up, and why the rest is not.

Computed from the live objects when asked (``/readyz``, a heartbeat), through the read-only
:class:`DaemonProbe` the daemon implements: a stream is up when audio flows and it is connected,
a sink when it is connected and delivering.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from listend.daemon.delivery.worker import SinkWorker
from listend.daemon.stream.stats import AUDIO_GRACE, SessionStats


@dataclass(frozen=True, slots=True)
class SinkState:
    """One sink as seen from outside: outbox depth, delivery counters, reachability."""

    depth: int
    delivered: int
    failed: int
    reachable: bool
    refused: int = 0  # events not stored: the outbox could not be written (a full disk)
    problem: str | None = None  # why it is not up: its outbox, the sink's account, deliveries

    @classmethod
    def of(cls, worker: SinkWorker) -> SinkState:
        return cls(
            depth=worker.depth(),
            delivered=worker.delivered,
            failed=worker.failed,
            reachable=worker.sink.reachable(),
            refused=worker.refusal.total,
            problem=worker.problem(),
        )


class DaemonProbe(Protocol):
    """The read-only view of a running daemon that health, metrics and STATUS= use."""

    @property
    def phase(self) -> str:
        """``starting``, ``running``, ``reloading`` or ``stopping``."""
        ...

    def stream_stats(self) -> Mapping[str, SessionStats]:
        """The stream sessions' stats by source name: running ones, and failed ones."""
        ...

    def sink_states(self) -> Mapping[str, SinkState]:
        """The running sinks, by name."""
        ...

    def stalls(self) -> list[str]:
        """Why the daemon is stuck (empty when it is making progress)."""
        ...


def sink_problem(state: SinkState) -> str | None:
    if state.problem is not None:
        return state.problem
    return None if state.reachable else "unreachable"


def readiness(probe: DaemonProbe, now: float | None = None) -> list[str]:
    """Reasons the daemon is not ready; empty means every stream is up (audio flowing and
    connected) and every sink is connected and delivering."""
    reasons = [] if probe.phase in ("running", "reloading") else [f"daemon is {probe.phase}"]
    for name, stats in sorted(probe.stream_stats().items()):
        reasons += stats.problems(name, now)
    for name, state in sorted(probe.sink_states().items()):
        if (problem := sink_problem(state)) is not None:
            reasons.append(f"sink {name}: {problem}")
    return reasons + probe.stalls()


def status_line(probe: DaemonProbe, now: float | None = None) -> str:
    """The summary systemctl status shows: what is up of how many, outbox depth, last final,
    then what is not up and why."""
    now = time.monotonic() if now is None else now
    streams = probe.stream_stats()
    sinks = probe.sink_states()
    up = sum(1 for name, stats in streams.items() if not stats.problems(name, now))
    sinks_up = sum(1 for state in sinks.values() if sink_problem(state) is None)
    depth = sum(state.depth for state in sinks.values())
    finals = [s.last_final_at for s in streams.values() if s.last_final_at is not None]
    last = f"last final {now - max(finals):.0f}s ago" if finals else "no finals yet"
    text = (
        f"{up}/{len(streams)} streams up, {sinks_up}/{len(sinks)} sinks up, outbox {depth}, {last}"
    )
    not_up = [r for r in readiness(probe, now) if not r.startswith("daemon is ")]
    if not_up:
        text += "; not up: " + "; ".join(not_up)
    return text if probe.phase == "running" else f"{probe.phase}: {text}"


async def first_signs(stats: SessionStats, task: asyncio.Task[None]) -> None:
    """A source's first connection attempt, then its first audio for up to AUDIO_GRACE s, or
    the end of its session: READY=1 waits for this, so it does not claim what is not up."""
    for event, timeout in ((stats.first_attempt, None), (stats.first_audio, AUDIO_GRACE)):
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait([waiter, task], timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            waiter.cancel()
