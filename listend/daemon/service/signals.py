"""Running the daemon as a service: signals in, one exit status out.

SIGHUP reloads; SIGTERM or SIGINT drains, and a second one exits at once; a user error raised
inside a task comes out as that one :class:`ListendError`, so the CLI prints one line and
exits with its code.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from listend.daemon.errors import ListendError

if TYPE_CHECKING:
    from listend.daemon.service.daemon import Daemon

log = logging.getLogger(__name__)

#: After a second stop signal, exit even if a blocked thread would hold the exit up.
FORCED_EXIT_AFTER = 3.0
#: The same stop signal again this soon is one stop delivered twice, not a second request:
#: `timeout -s INT 6 listend run` signals its child, then its whole process group.
SAME_SIGNAL_WITHIN = 0.5


def _user_error(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The first :class:`ListendError` a task raised (e.g. Deepgram refusing the key)."""
    found = group.subgroup(ListendError)
    first: BaseException | None = found
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


def _handle_signals(daemon: Daemon, main: asyncio.Task[Any]) -> list[signal.Signals]:
    loop = asyncio.get_running_loop()
    first: dict[signal.Signals, float] = {}

    def on_stop(signum: signal.Signals) -> None:
        now = time.monotonic()
        if now - first.setdefault(signum, now) < SAME_SIGNAL_WITHIN and daemon.stopping.is_set():
            log.debug(
                "%s again within %.1fs: the same stop, delivered twice",
                signum.name,
                SAME_SIGNAL_WITHIN,
            )
            return
        if daemon.stopping.is_set():
            log.warning("second %s: exiting without draining", signum.name)
            main.cancel()
            # Should a thread blocked in I/O hold the exit up, do not wait for it either.
            timer = threading.Timer(FORCED_EXIT_AFTER, os._exit, (128 + signum,))
            timer.daemon = True
            timer.start()
            return
        log.info("%s: draining (a second signal exits at once)", signum.name)
        daemon.request_stop()

    def on_hangup() -> None:
        if daemon.stopping.is_set():
            log.info("SIGHUP ignored: stopping")
            return
        log.info("SIGHUP: reloading the configuration")
        daemon.request_reload()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_stop, signum)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    return [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]


async def run_daemon(daemon: Daemon) -> int:
    """Run with signals: SIGHUP reloads; SIGTERM/SIGINT drain, a second one exits at once.

    The process's main: once it returns, these signals are ignored (the process is exiting).
    """
    main = asyncio.current_task()
    if main is None:  # a second signal cancels this task: there must be one
        raise RuntimeError("run_daemon() must run in a task (asyncio.run)")
    handled = _handle_signals(daemon, main)
    try:
        return await daemon.run()
    except asyncio.CancelledError:
        if daemon.stopping.is_set():
            return 130
        raise
    except BaseExceptionGroup as group:
        # A task's user error is surfaced so the CLI prints one line and exits with its code.
        error = _user_error(group)
        if error is None:
            raise
        raise error from group
    finally:
        for signum in handled:
            asyncio.get_running_loop().remove_signal_handler(signum)
            # The daemon has stopped: a signal arriving while the process exits (a SIGTERM
            # just as every source ended) must not turn its exit status into death by signal.
            signal.signal(signum, signal.SIG_IGN)
        daemon.notifier.close()
