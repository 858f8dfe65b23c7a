"""Planned failures for the test server: what a flaky network or a busy Deepgram does.

A :class:`FaultPlan` is a queue consumed one entry per handshake: a :class:`Refuse` answers that
handshake with an HTTP error, a :class:`Drop` or :class:`Stall` is attached to the connection it
accepts, ``None`` accepts it untouched. When the queue is empty every handshake is accepted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from listend.dgproto.hooks import Rejection

#: Close code for "no close frame": the server aborts the TCP connection instead.
ABRUPT = 1006


@dataclass(frozen=True, slots=True)
class Refuse:
    """Answer the handshake with ``status`` (and ``dg-error``) instead of upgrading."""

    status: int = 503
    err_code: str = "SERVICE_UNAVAILABLE"
    message: str = "Service unavailable, try again later."
    retry_after: float | None = None

    def rejection(self) -> Rejection:
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = f"{self.retry_after:g}"
        return Rejection(self.status, self.err_code, self.message, headers)


@dataclass(frozen=True, slots=True)
class Drop:
    """Close the connection with ``code`` once it has received ``after_bytes`` of audio or
    ``after_seconds`` have passed since it opened (whichever comes first). 1006 aborts."""

    after_bytes: int | None = None
    after_seconds: float | None = None
    code: int = 1011
    reason: str = "NET-0000: internal server error (injected)"


@dataclass(frozen=True, slots=True)
class Stall:
    """Stop reading and answering for ``seconds`` at the trigger point, then carry on."""

    after_bytes: int | None = None
    after_seconds: float | None = None
    seconds: float = 5.0


ConnectionFault = Drop | Stall
PlannedStep = Refuse | Drop | Stall | None


class FaultPlan:
    """The queue of planned outcomes, one per handshake, in the order they were added."""

    def __init__(self) -> None:
        self._steps: deque[PlannedStep] = deque()

    def accept(self, times: int = 1) -> FaultPlan:
        """Accept the next ``times`` handshakes without a fault (to place later faults)."""
        self._steps.extend([None] * times)
        return self

    def refuse(
        self,
        times: int = 1,
        *,
        status: int = 503,
        err_code: str = "SERVICE_UNAVAILABLE",
        message: str = "Service unavailable, try again later.",
        retry_after: float | None = None,
    ) -> FaultPlan:
        self._steps.extend([Refuse(status, err_code, message, retry_after)] * times)
        return self

    def drop(
        self,
        *,
        after_bytes: int | None = None,
        after_seconds: float | None = None,
        code: int = 1011,
        reason: str = "NET-0000: internal server error (injected)",
    ) -> FaultPlan:
        if after_bytes is None and after_seconds is None:
            raise ValueError("drop needs after_bytes or after_seconds")
        self._steps.append(Drop(after_bytes, after_seconds, code, reason))
        return self

    def stall(
        self,
        *,
        seconds: float,
        after_bytes: int | None = None,
        after_seconds: float | None = None,
    ) -> FaultPlan:
        if after_bytes is None and after_seconds is None:
            raise ValueError("stall needs after_bytes or after_seconds")
        self._steps.append(Stall(after_bytes, after_seconds, seconds))
        return self

    def clear(self) -> None:
        self._steps.clear()

    def pending(self) -> int:
        return len(self._steps)

    def next_step(self) -> PlannedStep:
        """The outcome for the handshake being handled now (``None``: accept normally)."""
        return self._steps.popleft() if self._steps else None
