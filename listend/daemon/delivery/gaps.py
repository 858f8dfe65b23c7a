"""Events a full outbox dropped (``policy: drop_oldest``): counted, and logged at most once a
minute while the gap grows, so an outage of a day does not log every transcript."""

from __future__ import annotations

import logging
import time

from listend.daemon.delivery.outbox import Dropped

log = logging.getLogger(__name__)

#: A gap (dropped events) is reported at most this often while it keeps growing.
GAP_REPORT_INTERVAL = 60.0


class Gaps:
    def __init__(self, sink: str, max_events: int) -> None:
        self.sink = sink
        self.max_events = max_events
        self.dropped = 0  # over the worker's life
        self._gap: list[Dropped] = []
        self._reported_at = 0.0

    def note(self, dropped: list[Dropped]) -> None:
        self.dropped += len(dropped)
        self._gap.extend(dropped)
        self.report()

    def report(self, *, force: bool = False) -> None:
        """Log what was dropped since the last report (unless that was under a minute ago)."""
        if not self._gap:
            return
        now = time.monotonic()
        if not force and self._reported_at and now - self._reported_at < GAP_REPORT_INTERVAL:
            return
        self._reported_at = now
        sources = sorted({d.source for d in self._gap})
        log.warning(
            "sink %s: outbox full (%d events): dropped %d oldest undelivered event(s) of %s, "
            "%s .. %s (%d dropped in total); consumers will see a gap",
            self.sink,
            self.max_events,
            len(self._gap),
            ", ".join(sources),
            self._gap[0].event_id,
            self._gap[-1].event_id,
            self.dropped,
        )
        self._gap.clear()
