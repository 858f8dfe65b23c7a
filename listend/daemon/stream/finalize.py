"""Finalize-on-stop: how every connection ends, so the last words become finals.

Finalize -> the final marked ``from_finalize`` -> CloseStream -> the server's close (1000).
Each wait is bounded by ``deepgram.finalize_timeout``; a server that does not close in time is
closed on. Only a connection that sent CloseStream and got 1000 back ended cleanly: any other
end is a failure the session reconnects after, replaying what no final covered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from deepgram.listen.v1.socket_client import AsyncV1SocketClient

log = logging.getLogger(__name__)

NORMAL_CLOSURE = 1000


@dataclass
class CloseHandshake:
    """How one connection is ending: the receiver records, the session reads the outcome."""

    finalized: asyncio.Event = field(default_factory=asyncio.Event)  # from_finalize final seen
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_stream_sent: bool = False
    close_code: int | None = None
    close_reason: str = ""

    def record_close(self, ws: Any) -> None:
        """The socket has closed, whoever closed it."""
        self.close_code = ws.close_code
        self.close_reason = ws.close_reason or ""
        self.closed.set()

    @property
    def clean(self) -> bool:
        """We asked to close and the server closed normally: nothing is left to replay."""
        return self.close_stream_sent and self.close_code == NORMAL_CLOSURE


async def finalize_and_close(
    send_finalize: Callable[[], Awaitable[None]],
    sock: AsyncV1SocketClient,
    ws: Any,
    handshake: CloseHandshake,
    *,
    seconds: float,
    source: str,
) -> None:
    """Finalize -> the from_finalize final -> CloseStream -> the server's close."""
    handshake.finalized.clear()  # answers to the voice gate's Finalize messages do not count
    await send_finalize()
    if not await _within(seconds, handshake.finalized):
        log.warning("source %s: no final for Finalize within %gs", source, seconds)
    await sock.send_close_stream()
    handshake.close_stream_sent = True
    if not await _within(seconds, handshake.closed):
        log.warning("source %s: Deepgram did not close within %gs", source, seconds)
        await ws.close()


async def _within(seconds: float, event: asyncio.Event) -> bool:
    """Wait up to ``seconds`` for ``event``; whether it came."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
