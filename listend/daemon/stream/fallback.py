"""``fallback: local``: while Deepgram is unreachable, a source streams to the local engine.

The session asks :meth:`Fallback.target` where to connect. Once Deepgram has failed for longer
than ``deepgram.fallback_after`` (or at once when the session is stopping), that is the local
engine; its connection replays from the first audio no final covered, as any reconnect does.
Meanwhile :meth:`Fallback.wait_for_primary` retries Deepgram's handshake with the shared
backoff; when it answers, the session finalizes the local stream, keeps its finals up to its
last endpoint (the connection drops the rest) and Deepgram resumes exactly there, so no word
is cut in two. Each stretch of audio is thus transcribed by exactly one engine, and events say
which in ``engine``.
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
        source: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.local = local
        self.after = after
        self.source = source
        self._clock = clock
        self.outage_since: float | None = None
        self._switched = False  # the switch to the local engine is logged once per outage
        self.probe_backoff = Backoff(initial=1.0, cap=30.0)

    def primary_failed(self) -> None:
        if self.outage_since is None:
            self.outage_since = self._clock()

    def primary_connected(self) -> None:
        self._primary_back()
        self.probe_backoff.reset()

    def _primary_back(self) -> None:
        self.outage_since = None
        self._switched = False

    def failed(self, endpoint: Endpoint, *, stopping: bool) -> bool:
        """A connection to ``endpoint`` failed: True when the next one goes to the local
        engine (Deepgram has been failing for ``after`` seconds)."""
        if endpoint is not self.primary:
            return False
        self.primary_failed()
        return self.target(stopping=stopping) is not endpoint

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
        """Where the next connection goes; the first switch of an outage is logged here, as
        the session mostly switches after a retry wait that ended at ``after``, not on a
        failure."""
        if self.outage_since is None:
            return self.primary
        if stopping or self._clock() - self.outage_since >= self.after:
            if not self._switched:
                self._switched = True
                log.warning(
                    "source %s: Deepgram unreachable for %.0fs: switching to the local engine",
                    self.source,
                    self.waited(),
                )
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
        self._primary_back()  # the next connection goes to Deepgram
