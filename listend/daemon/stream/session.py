"""A stream session: one source's audio over Deepgram streams, without losing any of it.

Four tasks per session: *capture* reads the source into the :class:`ReplayBuffer` (through the
:class:`VoiceGate` when the source has ``vad:``, which keeps silence out of the stream); per
connection (:mod:`connection`), *send* streams the buffer (:mod:`keepalive` when quiet,
:mod:`finalize` at the end) and *receive* turns Deepgram's messages into events; *publish*
hands events to the router from a bounded queue, so a slow sink never stalls the WebSocket. A
dropped connection is retried on the :class:`RetrySchedule` (the shared :class:`Backoff`;
once stopping, a short schedule until the deadline), and the new one starts by replaying what
no final covered, as fast as ``deepgram.catchup_speed`` allows. A final's audio is freed once
the router says the final is committed to every outbox; until then, while the stream is not
keeping up, it is also in the durable spool (:mod:`spooling`), which the next start
transcribes first, and so does this session when an outage outlasted the replay buffer
(:mod:`recovery`), each spooled run in a session of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from listend.daemon.config.models import DeepgramConfig
from listend.daemon.errors import ListendError
from listend.daemon.events import EventKind
from listend.daemon.plugin.source import Source
from listend.daemon.plugin.stream_options import StreamOptions
from listend.daemon.plugin.trigger_options import TriggerConfig
from listend.daemon.retry.backoff import Backoff
from listend.daemon.retry.outage import Outage
from listend.daemon.stream.capture import Capture, EventQueue, Publish
from listend.daemon.stream.connection import SessionLink, StreamConnection
from listend.daemon.stream.deepgram import (
    StreamClient,
    StreamError,
    check_stream_format,
    close_failure,
    connect_options,
    handshake_failure,
    open_stream,
)
from listend.daemon.stream.endpoint import Endpoint
from listend.daemon.stream.fallback import Fallback
from listend.daemon.stream.recovery import SpoolRecovery
from listend.daemon.stream.replay import ReplayBuffer
from listend.daemon.stream.results import EventFactory
from listend.daemon.stream.schedule import HEALTHY_AFTER, RetrySchedule
from listend.daemon.stream.spool import Spool, SpoolRun
from listend.daemon.stream.spooling import SpoolKeeper
from listend.daemon.stream.stats import SessionStats
from listend.daemon.stream.triggers import PhraseTracker

log = logging.getLogger(__name__)


class StreamSession:
    def __init__(
        self,
        *,
        name: str,
        device: str,
        source: Source,
        options: StreamOptions,
        deepgram: DeepgramConfig,
        endpoint: Endpoint,
        publish: Publish,
        kinds: Callable[[], Collection[EventKind]] | None = None,
        fallback: Endpoint | None = None,
        spool: Spool | None = None,
        recovering: SpoolRun | None = None,
        triggers: Mapping[str, TriggerConfig] | None = None,
    ) -> None:
        self.name = name
        self.device = device
        self.source = source
        self.options = options
        self.deepgram = deepgram
        self.endpoint = endpoint
        self.publish = publish
        self._kinds = kinds  # what the source's sinks receive now (None: everything)
        self.format = source.audio_format
        check_stream_format(name, options, self.format)
        self.client = endpoint.client()
        local = fallback.client() if fallback is not None else None
        self.fallback = (  # `fallback: local`, when the daemon runs the local engine
            None
            if fallback is None or self.client is None or local is None
            else Fallback(endpoint, fallback, after=deepgram.fallback_after, source=name)
        )
        self._clients: dict[str, StreamClient] = {}  # by URL: what it may connect to
        if self.client is not None:
            self._clients[endpoint.url] = self.client
        if self.fallback is not None and local is not None:
            self._clients[self.fallback.local.url] = local
        self.stats = SessionStats(source_problem=source.problem)  # read by /readyz, STATUS=
        self._failure: ListendError | None = None  # a fatal stream error
        self.backoff = Backoff(stable_after=HEALTHY_AFTER)  # the shared policy; replaceable
        self.schedule = RetrySchedule(name, deepgram.finalize_timeout)
        self.outage = Outage(
            f"source {name}",
            retrying="reconnecting with backoff",
            recovered="reconnected",
            logger=log,
        )
        self.live = source.realtime and recovering is None
        self._stop = asyncio.Event()
        self._capture_task: asyncio.Task[None] | None = None
        self.buffer = ReplayBuffer(self.format, deepgram.replay_buffer_seconds)
        self.recovering = recovering
        self.keeper = SpoolKeeper.of(spool, self.buffer, self.stats, name, recovering)
        self.capture = Capture(name, source, self.buffer, self.stats, recovering=recovering)
        self.gate = self.capture.gate
        self.factory = EventFactory(
            device=device,
            source=name,
            epoch=0,
            wall_start=time.time() if recovering is None else recovering.wall_start,
            engine=endpoint.engine,
            timeline=self.buffer.timeline,
            recovered=recovering is not None,
        )
        self.recovery = (  # a live session with a spool transcribes spooled runs first
            None
            if self.keeper is None or recovering is not None
            else SpoolRecovery(
                self.keeper,
                self.factory,
                spawn=self._recovering,
                note_gap=self._note_gap,
                stopping=self._stop.is_set,
                buffer_seconds=deepgram.replay_buffer_seconds,
            )
        )
        self.triggers = triggers or {}  # the source's phrase triggers (PhraseTracker)
        phrases = PhraseTracker.of(self.triggers, self.factory)
        self.events = EventQueue(name, self.buffer, publish, self._acked, phrases)
        self.emit = self.events.emit

    @property
    def wants_interims(self) -> bool:
        """Whether a sink receives interims or phrases (if not, interims are never built)."""
        kinds = None if self._kinds is None else self._kinds()
        wanted = {"interim", "phrase"} if self.events.phrases is not None else {"interim"}
        return kinds is None or not wanted.isdisjoint(kinds)

    @property
    def failure(self) -> ListendError | None:
        """Why the source stopped, if it had to (the source's error, or a fatal stream one)."""
        return self._failure or self.capture.failure

    @property
    def paused(self) -> bool:
        return self.capture.paused

    def pause(self, paused: bool) -> None:  # noqa: FBT001 - a switch
        """Paused: the source is read but nothing is streamed (nor billed) until resumed."""
        self.capture.paused = paused

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self, within: float | None = None) -> None:
        """Ask for a graceful end: stop capturing, finalize, close, then :meth:`run` returns;
        ``within``: the seconds the stop may take (a stream that is down retries until then)."""
        if not self._stop.is_set():
            self._stop.set()
            self.schedule.stop(within)
        if self._capture_task is not None:
            self._capture_task.cancel()
        if self.recovery is not None:
            self.recovery.stop()

    async def run(self, epoch: int | None = None) -> None:
        if self.client is None:
            await self.capture.drain(self._stop)
            return
        now = time.time()
        self.factory.epoch = epoch or int(now * 1000)
        if self.recovering is None:
            self.factory.wall_start = now
        tag = f"listend[source:{self.name}]"
        keeper = self.keeper
        try:
            async with asyncio.TaskGroup() as group:
                self._capture_task = group.create_task(self.capture.run(), name=f"{tag}.capture")
                if self._stop.is_set():
                    self._capture_task.cancel()
                publisher = group.create_task(self.events.run(), name=f"{tag}.publish")
                if keeper is not None and self.recovering is None:
                    keeper.begin(self.factory.epoch, now)
                    writer = group.create_task(keeper.keep(), name=f"{tag}.spool")
                try:
                    if self.recovery is not None:
                        await self.recovery.earlier_runs()
                    await self._stream()
                except BaseException:
                    publisher.cancel()  # a hard stop does not wait for the sinks
                    raise
                finally:
                    self._capture_task.cancel()
                    if keeper is not None:
                        if self.recovering is None:
                            writer.cancel()
                        await keeper.finish(self.events.last_final)
                await self.events.close()  # the publisher drains the queue, then ends
        finally:
            self.stats.mark_down()
            self.stats.first_attempt.set()
        log.info("source %s%s ended", self.name, " (recovering the spool)" * bool(self.recovering))

    def _recovering(self, run: SpoolRun) -> StreamSession:
        """A session of its own for a spooled run (:mod:`recovery`): its events say they were
        recovered and carry the run's times; this session's :meth:`stop` stops it too."""
        spool = None if self.keeper is None else self.keeper.spool
        recovery = StreamSession(
            name=self.name,
            device=self.device,
            source=self.source,
            options=self.options,
            deepgram=self.deepgram,
            endpoint=self.endpoint,
            publish=self.publish,
            kinds=self._kinds,
            fallback=None if self.fallback is None else self.fallback.local,
            spool=spool,
            recovering=run,
            triggers=self.triggers,
        )
        recovery.backoff = self.backoff
        return recovery

    # -- capture and publish ------------------------------------------------------------

    @property
    def dropped_interims(self) -> int:
        return self.events.dropped_interims

    def _acked(self, covered: int) -> None:
        """A final is committed to every outbox: its audio may go (memory and spool)."""
        self.buffer.release(covered)
        if self.keeper is not None:
            self.keeper.release(self.buffer.acked)

    # -- connections ----------------------------------------------------------------------

    async def _stream(self) -> None:
        """Connect, stream, reconnect on retryable failures; return once flushed (or fatal)."""
        backoff = self.backoff
        outage = self.outage
        outage.stable_after = backoff.stable_after  # one outage until the backoff resets
        while True:
            buffer = self.buffer
            if buffer.ended and not buffer.uncovered and (self.stats.connects or not buffer.end):
                return  # nothing (left) to transcribe: stopped before or between connections
            if buffer.lost() and self.recovery is not None:
                await self.recovery.dropped()
            endpoint = self._target()
            try:
                handed_back = await self._connection(backoff, endpoint)
            except StreamError as failure:
                self.stats.attempt_failed(str(failure))
                if not failure.retry:
                    self._failure = failure.error
                    return
                outage.failed(str(failure))
                fallback = self.fallback
                if fallback is not None and fallback.failed(endpoint, stopping=self._stop.is_set()):
                    continue
                if self.schedule.out_of_time():
                    self._abandon(failure)
                    return
                await self.schedule.wait(  # stop() cuts a backoff: flush what was captured now
                    backoff,
                    self._stop,
                    retry_after=failure.retry_after,
                    at_most=math.inf if fallback is None else fallback.turn(endpoint),
                )
            else:
                if not handed_back:
                    return

    def _abandon(self, failure: StreamError) -> None:
        buffer = self.buffer
        if self.keeper is None:
            lost = buffer.to_seconds(buffer.lost() + buffer.uncovered)
            self.stats.gap_seconds += lost
            log.error(
                "source %s: stopping with %.1fs never transcribed (%s)", self.name, lost, failure
            )
            return
        log.warning(  # the keeper says what did not fit (a counted gap)
            "source %s: stopping with %.1fs not transcribed (%s): kept in the spool",
            self.name,
            buffer.to_seconds(buffer.uncovered),
            failure,
        )

    def _note_gap(self, nbytes: int, why: str) -> None:
        """Audio that is gone for good: counted and logged with its length, never silent."""
        if nbytes < self.format.bytes_per_frame:
            return
        seconds = self.buffer.to_seconds(nbytes)
        self.stats.gap_seconds += seconds
        until = self.buffer.source_seconds(self.buffer.covered)
        log.error(
            "source %s: %.1fs of audio lost (%.1fs-%.1fs): the outage outlasted the replay "
            "buffer (deepgram.replay_buffer_seconds=%g) and %s",
            self.name,
            seconds,
            until - seconds,
            until,
            self.deepgram.replay_buffer_seconds,
            why,
        )

    def _target(self) -> Endpoint:
        if self.fallback is None:
            return self.endpoint
        return self.fallback.target(stopping=self._stop.is_set())

    async def _connection(self, backoff: Backoff, endpoint: Endpoint) -> bool:
        """One connection to ``endpoint``; True when it ended to hand back to Deepgram."""
        start = self._resume_point()
        async with contextlib.AsyncExitStack() as stack:
            client = self._clients[endpoint.url]  # run() streams only with a client
            try:
                sock = await stack.enter_async_context(
                    open_stream(
                        client, connect_options(self.options, self.format), endpoint.authorization
                    )
                )
            except Exception as exc:
                raise handshake_failure(exc, self.name) from exc
            ws: Any = sock._websocket  # noqa: SLF001 - the SDK does not expose headers/close code
            request_id = ws.response_headers.get("dg-request-id")
            link = self._link(backoff)
            conn = StreamConnection(sock, ws, start=start, request_id=request_id, link=link)
            self.factory.engine = endpoint.engine
            self._connected(backoff, conn, endpoint)
            if self.fallback is not None:
                if endpoint is self.fallback.primary:
                    self.fallback.primary_connected()
                else:
                    primary = self._clients[self.fallback.primary.url]
                    options = connect_options(self.options, self.format)
                    await stack.enter_async_context(
                        self.fallback.handing_back(primary, options, self.name, conn.handoff)
                    )
            await conn.run()
            self.stats.mark_down()
        if conn.handshake.clean:
            return conn.handoff.is_set()
        raise close_failure(conn.handshake.close_code, conn.handshake.close_reason, self.name)

    def _link(self, backoff: Backoff) -> SessionLink:
        """What the next connection uses of this session."""
        return SessionLink(
            source=self.name,
            buffer=self.buffer,
            stats=self.stats,
            factory=self.factory,
            emit=self.emit,
            keepalive_interval=self.deepgram.keepalive_interval,
            finalize_timeout=self.deepgram.finalize_timeout,
            catchup_speed=self.deepgram.catchup_speed if self.live else 0.0,
            answered=backoff.healthy,
            stopping=self._stop.is_set,
            wants_interims=self.wants_interims,
        )

    def _resume_point(self) -> int:
        """Where the next connection starts: the first audio no final covered."""
        lost = self.buffer.skip_lost()
        if lost:
            self.factory.skip_to(self.buffer.source_seconds(self.buffer.covered))
            why = "no spool held it" if self.keeper is None else "it was not spooled"
            self._note_gap(lost, why)
        return max(self.buffer.covered, self.buffer.start)

    def _connected(self, backoff: Backoff, conn: StreamConnection, endpoint: Endpoint) -> None:
        stats = self.stats
        stats.connection_opened()
        backoff.connected()
        local = endpoint is not self.endpoint
        self.outage.recovered = "streaming to the local engine" if local else "reconnected"
        self.outage.up()
        self.factory.connection(self.buffer.to_seconds(conn.start), conn.request_id)
        backlog = self.buffer.to_seconds(self.buffer.end - conn.start)
        offset = self.buffer.source_seconds(conn.start)
        log.info(
            "source %s: connected (dg-request-id %s)%s",
            self.name,
            conn.request_id,
            f", replaying {backlog:.1f}s from {offset:.1f}s" if stats.connects > 1 else "",
        )
