"""A sink whose outbox cannot be written (a full disk): refuse its events, probe, resume.

Crashing would lose more than it saves: the other sinks, the streams and the delivery of the
backlog (which frees space) all go on. While the outbox refuses writes, new events for that
sink are counted, not stored: one error when it starts, one line with the count when space
returns. The probe backs off with the shared :class:`~listend.daemon.retry.backoff.Backoff`.

A disk that stays nearly full flaps: the outbox takes events as fast as delivery frees room
and refuses the rest. A refusal within STABLE_AFTER of the last resume is the same episode
(no new error, the count goes on), and its resumes are logged at most once per STABLE_AFTER.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from listend.daemon.delivery.outbox import OutboxFullError
from listend.daemon.retry.backoff import Backoff
from listend.daemon.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: Seconds the outbox must stay writable before a new refusal is a new episode (an error).
STABLE_AFTER = 60.0


class Refusal:
    """The "outbox cannot be written" state of one sink; ``probe`` is the outbox's."""

    def __init__(
        self, sink: str, probe: Callable[[], Awaitable[None]], backoff: Backoff | None = None
    ) -> None:
        self.sink = sink
        self._probe = probe
        self.backoff = backoff or Backoff(initial=0.5, cap=10.0)
        self.reason: str | None = None  # set while refusing
        self.total = 0  # events refused over the worker's life
        self._since = 0.0  # when the current episode began
        self._now = 0  # ... and the events it refused
        self._resumed_at: float | None = None
        self._reported_at: float | None = None
        self._prober: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self.reason is not None

    def describe(self) -> str | None:
        """Why the sink is not ready (for /readyz and STATUS=), or None."""
        if self.reason is None:
            return None
        return f"outbox cannot be written ({self.reason}); {self._now} event(s) refused"

    def refuse(self, count: int, error: OutboxFullError | None = None) -> None:
        """``count`` events were not stored; ``error`` starts a refusal if none is on."""
        if self.reason is None:
            self.reason = str(error) if error is not None else "not writable"
            now = time.monotonic()
            if self._resumed_at is None or now - self._resumed_at >= STABLE_AFTER:
                self._since, self._now = now, 0
                log.error(
                    "sink %s: outbox cannot be written (%s): refusing new events for this "
                    "sink until it can (probing with backoff); streams and other sinks go on",
                    self.sink,
                    self.reason,
                )
            else:
                log.debug("sink %s: outbox full again: %s", self.sink, self.reason)
            self._prober = asyncio.get_running_loop().create_task(
                self._probe_until_writable(), name=f"listend[sink:{self.sink}].space-probe"
            )
        self.total += count
        self._now += count

    async def _probe_until_writable(self) -> None:
        self.backoff.reset()
        while True:
            await self.backoff.wait()
            try:
                await self._probe()
            except OutboxFullError as exc:
                log.debug("sink %s: outbox still not writable: %s", self.sink, exc)
                continue
            break
        now = time.monotonic()
        quiet = self._reported_at is not None and now - self._reported_at < STABLE_AFTER
        log.log(
            logging.DEBUG if quiet else logging.INFO,
            "sink %s: outbox writable again after %.1f s; accepting events; %d event(s) for "
            "this sink were refused meanwhile",
            self.sink,
            now - self._since,
            self._now,
        )
        if not quiet:
            self._reported_at = now
        self._resumed_at = now
        self.reason = None
        self._prober = None

    async def close(self) -> None:
        """Stop probing (the worker stops); say what was refused if it still is."""
        if self._prober is not None:
            await cancel_and_wait(self._prober)
            self._prober = None
        if self.reason is not None:
            log.warning(
                "sink %s: stopping while the outbox cannot be written; %d event(s) refused",
                self.sink,
                self._now,
            )
