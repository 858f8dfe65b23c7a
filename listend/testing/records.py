"""What the test server records about each connection, bounded so a long stream stays cheap.

:class:`Recorder` is the hook the test server gives the protocol server: it keeps the latest
connections and refusals, plays the :class:`~listend.testing.faults.FaultPlan` and lets a test
wait for connections. Each :class:`ConnectionRecord` keeps the first :data:`MAX_AUDIO` bytes of
audio (``bytes_received`` counts on) and the latest :data:`MAX_MESSAGES` messages each way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from listend.dgproto import records as live
from listend.dgproto.hooks import Rejection, ServerHooks
from listend.dgproto.recognizer import StreamParams
from listend.dgproto.records import Refusal, Stream
from listend.testing.faults import ABRUPT, ConnectionFault, Drop, FaultPlan, Refuse

log = logging.getLogger(__name__)

MAX_AUDIO = 64 << 20  # over half an hour of 16 kHz stereo linear16
MAX_MESSAGES = 10_000
MAX_CONNECTIONS = 1_000


@dataclass(frozen=True, slots=True)
class ControlMessage:
    """A text message the client sent, with how much audio had arrived before it."""

    type: str
    at_byte: int
    at: float  # seconds since the connection opened
    raw: str


def _messages() -> deque[Any]:
    return deque(maxlen=MAX_MESSAGES)


@dataclass(eq=False)
class ConnectionRecord(live.ConnectionRecord):
    """Everything one connection received and sent and how it ended (for tests)."""

    query: list[tuple[str, str]] = field(default_factory=list)
    authorization: str | None = None
    fault: ConnectionFault | None = None
    audio: bytearray = field(default_factory=bytearray)
    controls: deque[ControlMessage] = field(default_factory=_messages)
    sent: deque[dict[str, Any]] = field(default_factory=_messages)

    @property
    def control_types(self) -> list[str]:
        return [c.type for c in self.controls]

    def finals(self) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("type") == "Results" and m.get("is_final")]

    def deadline(self) -> float | None:
        if self.fault is None or self.fault.after_seconds is None:
            return None
        return self.opened_at + self.fault.after_seconds

    async def on_deadline(self, stream: Stream) -> None:
        await self._fire(stream)

    async def on_audio(self, stream: Stream, data: bytes) -> None:
        room = MAX_AUDIO - len(self.audio)
        if room > 0:
            self.audio += data[:room]
        after = None if self.fault is None else self.fault.after_bytes
        if after is not None and self.bytes_received >= after:
            await self._fire(stream)

    def on_control(self, kind: str, raw: str) -> None:
        at = time.monotonic() - self.opened_at
        self.controls.append(ControlMessage(kind, self.bytes_received, at, raw))

    def on_sent(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def _fire(self, stream: Stream) -> None:
        fault, self.fault = self.fault, None
        if isinstance(fault, Drop):
            log.info("connection %s: injected close %d", self.request_id, fault.code)
            if fault.code == ABRUPT:
                stream.abort()
            else:
                await stream.close(fault.code, fault.reason)
        elif fault is not None:
            log.info("connection %s: injected stall %.1fs", self.request_id, fault.seconds)
            await asyncio.sleep(fault.seconds)


@dataclass(frozen=True, slots=True)
class _Planned:
    fault: ConnectionFault | None


_PLANNED = web.RequestKey("listend_testing_planned", _Planned)


class Recorder(ServerHooks):
    """Records connections and refusals (the latest :data:`MAX_CONNECTIONS`), plays faults.

    The test server uses one; to watch another protocol server (the local engine's), set its
    ``hooks`` to a ``Recorder()`` and back to ``ServerHooks()`` when done.
    """

    def __init__(self, faults: FaultPlan | None = None) -> None:
        self.faults = faults or FaultPlan()
        self.connections: deque[ConnectionRecord] = deque(maxlen=MAX_CONNECTIONS)
        self.refusals: deque[Refusal] = deque(maxlen=MAX_CONNECTIONS)
        self.accepted = 0
        self._opened = asyncio.Event()

    def rejection(self, request: web.Request) -> Rejection | None:
        step = self.faults.next_step()
        if isinstance(step, Refuse):
            return step.rejection()
        request[_PLANNED] = _Planned(step)
        return None

    def refused(self, refusal: Refusal) -> None:
        self.refusals.append(refusal)

    def open(
        self, request: web.Request, index: int, request_id: str, params: StreamParams
    ) -> ConnectionRecord:
        planned = request.get(_PLANNED)
        record = ConnectionRecord(
            index,
            request_id,
            params,
            query=list(request.query.items()),
            authorization=request.headers.get("Authorization"),
            fault=None if planned is None else planned.fault,
        )
        self.connections.append(record)
        self.accepted += 1
        self._opened.set()
        return record

    async def wait_for_connections(self, count: int) -> None:
        """Wait until ``count`` connections have been accepted in total."""
        while self.accepted < count:
            self._opened.clear()
            await self._opened.wait()
