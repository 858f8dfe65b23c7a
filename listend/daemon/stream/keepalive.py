"""KeepAlive: a quiet stream (voice gate closed, source silent) stays open.

Deepgram closes a stream that receives nothing for about ten seconds. The sender waits for
audio without a timer per chunk, so this task of its own wakes once an interval and sends
KeepAlive whenever nothing went out for ``deepgram.keepalive_interval``.
"""

from __future__ import annotations

import asyncio
import time

from deepgram.listen.v1.socket_client import AsyncV1SocketClient

from listend.daemon.stream.stats import SessionStats


class LastSent:
    """When audio or a control message last went out on one connection."""

    def __init__(self) -> None:
        self.at = time.monotonic()

    def touch(self) -> None:
        self.at = time.monotonic()


async def keep_alive(
    sock: AsyncV1SocketClient, last_sent: LastSent, interval: float, stats: SessionStats
) -> None:
    """Until cancelled: KeepAlive whenever the socket was quiet for ``interval`` seconds."""
    while True:
        quiet = time.monotonic() - last_sent.at
        if quiet < interval:
            await asyncio.sleep(interval - quiet)
            continue
        await sock.send_keep_alive()
        stats.keepalives += 1
        last_sent.touch()
