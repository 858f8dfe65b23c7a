"""The one outage logger: a warning when an outage starts, info when it ends, debug between.

Every retry loop (stream sessions, fallback probe, MQTT, sink delivery, live sources) reports
through an :class:`Outage`, so a broker down for an hour logs two lines, not one per attempt:
``sink m: MQTT broker h:1883: refused; retrying`` ... ``sink m: connected to MQTT broker
h:1883 again after 3600.2 s (118 failed attempts)``.

With ``stable_after`` (the backoff's), a recovery that fails again sooner is the same outage:
a command crashing every few seconds is one warning, not one per crash. With ``since``, the
outage has begun (and been reported) already: only its attempts and its end are logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Outage:
    """Tracks and logs one thing's outages; ``label`` starts every line (``source mic``)."""

    def __init__(
        self,
        label: str,
        *,
        retrying: str = "retrying with backoff",
        recovered: str = "recovered",
        stable_after: float = 0.0,
        since: float | None = None,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.retrying = retrying
        self.recovered = recovered
        self.stable_after = stable_after
        self._log = logger or log
        self._clock = clock
        self.started = since  # when the current (or last) outage began
        self.outages = 0 if since is None else 1  # ``since``: one already reported elsewhere
        self.failures = 0  # failed attempts in the current (or last) outage
        self.last_error: str | None = None
        self._up_since: float | None = None
        self._recovery_logged = False

    @property
    def down(self) -> bool:
        return self.started is not None and self._up_since is None

    def failed(self, reason: str) -> None:
        """An attempt failed (or what was up went down) because of ``reason``."""
        now = self._clock()
        up_since = self._up_since
        flapping = up_since is not None and now - up_since < self.stable_after
        ongoing = self.started is not None and (up_since is None or flapping)
        self._up_since = None
        self.last_error = reason
        if ongoing:
            self.failures += 1
            self._log.debug("%s: %s (attempt %d failed)", self.label, reason, self.failures)
            return
        self.started = now
        self.outages += 1
        self.failures = 1
        self._recovery_logged = False
        self._log.warning("%s: %s; %s", self.label, reason, self.retrying)

    def up(self) -> bool:
        """It works again; True when this logged the end of an outage."""
        now = self._clock()
        if self._up_since is None:
            self._up_since = now
        if self.started is None or self._recovery_logged:
            return False
        self._recovery_logged = True
        self._log.info(
            "%s: %s after %.1f s (%d failed attempts)",
            self.label,
            self.recovered,
            now - self.started,
            self.failures,
        )
        return True
