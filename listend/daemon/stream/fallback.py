"""``fallback: local``: while Deepgram is unreachable, a source streams to the local engine.

The session asks :meth:`Fallback.target` where to connect. Once Deepgram has failed for longer
than ``deepgram.fallback_after`` (or at once when the session is stopping), that is the local
engine; its connection replays from the first audio no final covered, as any reconnect does.
Meanwhile :meth:`Fallback.wait_for_primary` retries Deepgram's handshake with the shared
backoff; when it answers, the session finalizes the local stream (its finals then cover
everything sent to it) and Deepgram resumes exactly there. Each stretch of audio is thus
transcribed by exactly one engine, and events say which in ``engine``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from listend.daemon.retry.backoff import Backoff
from listend.daemon.retry.outage import Outage
from listend.daemon.retry.retrying import retrying
from listend.daemon.stream.deepgram import StreamClient, open_stream
from listend.daemon.stream.endpoint import Endpoint

log = logging.getLogger(__name__)


class Fallback:
    def __init__(
        self,
        primary: Endpoint,
        local: Endpoint,
        *,
        after: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.local = local
        self.after = after
        self._clock = clock
        self.outage_since: float | None = None
        self.probe_backoff = Backoff(initial=1.0, cap=30.0)

    def primary_failed(self) -> None:
        if self.outage_since is None:
            self.outage_since = self._clock()

    def primary_connected(self) -> None:
        self.outage_since = None
        self.probe_backoff.reset()

    def failed(self, endpoint: Endpoint, failure: str, *, source: str, stopping: bool) -> bool:
        """A connection to ``endpoint`` failed: True when the next one goes to the local
        engine (Deepgram has been failing for ``after`` seconds)."""
        if endpoint is not self.primary:
            return False
        self.primary_failed()
        if self.target(stopping=stopping) is endpoint:
            return False
        log.warning(
            "source %s: %s; Deepgram unreachable for %.0fs: switching to the local engine",
            source,
            failure,
            self.waited(),
        )
        return True

    def turn(self, endpoint: Endpoint) -> float:
        """The longest wait before the next attempt on ``endpoint``: until the local engine's
        turn."""
        if endpoint is self.primary:
            return max(0.0, self.after - self.waited())
        return math.inf

    @contextlib.asynccontextmanager
    async def handing_back(
        self,
        client: StreamClient,
        options: dict[str, Any],
        source: str,
        handoff: asyncio.Event,
    ) -> AsyncIterator[None]:
        """While on the local engine: set ``handoff`` (the connection then ends cleanly) once
        Deepgram answers again."""

        async def probe() -> None:
            await self.wait_for_primary(client, options, source)
            log.info("source %s: finalizing the local stream, back to Deepgram", source)
            handoff.set()

        task = asyncio.create_task(probe(), name=f"listend[source:{source}].probe")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def target(self, *, stopping: bool) -> Endpoint:
        """Where the next connection goes."""
        if self.outage_since is None:
            return self.primary
        if stopping or self._clock() - self.outage_since >= self.after:
            return self.local
        return self.primary

    def waited(self) -> float:
        return 0.0 if self.outage_since is None else self._clock() - self.outage_since

    async def wait_for_primary(
        self, client: StreamClient, options: dict[str, Any], source: str
    ) -> None:
        """Return once Deepgram accepts a stream again (the probe stream is closed at once)."""
        outage = Outage(  # the session has warned already: log the probes and the end only
            f"source {source}: Deepgram",
            recovered="reachable again",
            since=self.outage_since if self.outage_since is not None else self._clock(),
            logger=log,
            clock=self._clock,
        )

        async def probe() -> None:
            authorization = self.primary.authorization
            async with open_stream(client, options, authorization):
                pass

        await self.probe_backoff.wait()
        await retrying(probe, backoff=self.probe_backoff, outage=outage)
        outage.up()
        self.outage_since = None  # the next connection goes to Deepgram
