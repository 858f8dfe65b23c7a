"""Stopping without losing what was heard: the drain sequence, and ``settle`` for a reload.

On stop every source stops capturing and its stream finalizes (:mod:`..stream.finalize`), the
router forwards what the sessions published, and each sink worker keeps delivering until its
``outbox.drain_timeout`` (or the daemon's ``drain_timeout``, whichever comes first); what is
left stays in the outbox for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping

from listend.daemon.delivery.router import Router
from listend.daemon.delivery.worker import SinkWorker
from listend.daemon.stream.session import StreamSession

log = logging.getLogger(__name__)

#: Time a sink worker gets after its drain deadline to close its outbox and sink.
WORKER_CLOSE_GRACE = 2.0


async def settle(tasks: Iterable[asyncio.Task[None]], limit: float | None) -> None:
    """Wait for ``tasks`` up to ``limit`` seconds, then cancel the rest and wait for them.

    ``asyncio.wait`` never raises the tasks' own cancellation into the caller, so a caller
    that is itself cancelled still notices, and the TaskGroup reports the tasks' real errors.
    """
    pending = {task for task in tasks if not task.done()}
    if not pending:
        return
    _done, late = await asyncio.wait(pending, timeout=limit)
    for task in late:
        task.cancel()
    if late:
        await asyncio.wait(late)


def report_untranscribed(
    sessions: Mapping[str, tuple[StreamSession, asyncio.Task[None]]], seconds: float
) -> None:
    """One line for the sessions the drain deadline cut off (cancelled before their finals):
    how much of each source's audio was never transcribed. (A session that gave up by itself
    has already said so.)"""
    cut = {
        name: session.buffer.to_seconds(session.buffer.lost() + session.buffer.uncovered)
        for name, (session, task) in sessions.items()
        if task.cancelled()
    }
    if lost := {name: left for name, left in cut.items() if left > 0}:
        log.error(
            "drain_timeout (%gs) reached before the final transcripts: audio never transcribed: %s",
            seconds,
            ", ".join(f"source {name} {left:.1f}s" for name, left in sorted(lost.items())),
        )


async def drain(
    *,
    sessions: Mapping[str, tuple[StreamSession, asyncio.Task[None]]],
    router: tuple[Router, asyncio.Task[None]],
    workers: Mapping[str, tuple[SinkWorker, asyncio.Task[None]]],
    seconds: float,
) -> None:
    """Stop sources, finalize streams, flush outboxes; give up after ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    def left() -> float:
        return max(0.0, deadline - loop.time())

    log.info("draining: finalizing %d stream(s), flushing outboxes", len(sessions))
    for session, _task in sessions.values():
        session.stop(left())  # a stream that is down retries until (nearly) the deadline
    await settle([task for _session, task in sessions.values()], left())
    report_untranscribed(sessions, seconds)
    with contextlib.suppress(TimeoutError):  # a full queue behind a stuck sink
        async with asyncio.timeout(left()):
            await router[0].close()
    await settle([router[1]], left())
    for worker, _task in workers.values():
        # each worker stops at its own outbox.drain_timeout or ours, whichever comes first,
        # and says what stays in its outbox for the next start
        worker.close(min(left(), worker.options.drain_timeout))
    await settle([task for _worker, task in workers.values()], left() + WORKER_CLOSE_GRACE)
