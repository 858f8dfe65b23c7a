"""sd_notify(3): tell systemd we are ready, reloading, stopping, alive — without libsystemd.

The protocol is one datagram of ``KEY=VALUE`` lines to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace). Outside systemd the
variable is unset and every call is a no-op. The watchdog ping runs as a task on the event
loop itself, so a wedged loop stops the pings and systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, MutableMapping

log = logging.getLogger(__name__)

#: A progress check returns ``None`` when fine, else why the daemon is stuck.
ProgressCheck = Callable[[], str | None]
#: Seconds between STATUS= refreshes (and at most between watchdog pings).
STATUS_PERIOD = 5.0


def _address(value: str) -> str | bytes:
    if value.startswith("@"):
        return b"\0" + value[1:].encode()  # abstract namespace
    return value


class Notifier:
    """Sends notifications to ``$NOTIFY_SOCKET``; does nothing when it is not set.

    The variables are removed from the environment (like ``sd_notify(unset_environment=1)``)
    so processes we spawn cannot talk to systemd on our behalf.
    """

    def __init__(self, environ: MutableMapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.socket_path = env.pop("NOTIFY_SOCKET", None) or None
        self.watchdog_interval = watchdog_interval(env)
        for name in ("WATCHDOG_USEC", "WATCHDOG_PID"):
            env.pop(name, None)
        self._sock: socket.socket | None = None
        self._warned = False
        if self.socket_path is not None and self.socket_path[0] not in "/@":
            log.warning("ignoring NOTIFY_SOCKET=%r: not a path or @abstract name", self.socket_path)
            self.socket_path = None

    @property
    def enabled(self) -> bool:
        return self.socket_path is not None

    def notify(self, **fields: object) -> bool:
        """Send ``KEY=value`` lines (keys upper-cased); return whether systemd got them."""
        if self.socket_path is None:
            return False
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        try:
            if self._sock is None:
                # non-blocking: never stall the loop on a full socket buffer
                kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
                self._sock = socket.socket(socket.AF_UNIX, kind)
            self._sock.sendto(message.encode(), _address(self.socket_path))
        except OSError as exc:
            if not self._warned:  # a gone socket would otherwise log every watchdog ping
                log.warning("sd_notify to %s failed: %s", self.socket_path, exc)
                self._warned = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify(ready=1, **({"status": status} if status else {}))

    def reloading(self) -> bool:
        """``RELOADING=1`` with the CLOCK_MONOTONIC timestamp systemd >= 253 requires."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(reloading=1, monotonic_usec=usec)

    def stopping(self) -> bool:
        return self.notify(stopping=1)

    def status(self, text: str) -> bool:
        return self.notify(status=text.replace("\n", " "))

    def watchdog(self) -> bool:
        return self.notify(watchdog=1)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Seconds from ``$WATCHDOG_USEC`` if the watchdog is meant for this process, else None."""
    usec = environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = environ.get("WATCHDOG_PID")
    try:
        if pid and int(pid) != os.getpid():
            return None
        value = int(usec)
    except ValueError:
        log.warning("ignoring malformed WATCHDOG_USEC=%r / WATCHDOG_PID=%r", usec, pid)
        return None
    return value / 1e6 if value > 0 else None


async def run_heartbeat(
    notifier: Notifier,
    *,
    checks: list[ProgressCheck],
    status: Callable[[], str],
    status_period: float = STATUS_PERIOD,
) -> None:
    """Refresh ``STATUS=`` and ping the watchdog while every progress check passes.

    Runs until cancelled, every ``WatchdogSec / 2`` (or ``status_period`` if shorter). The
    task runs on the event loop it guards, so a blocked loop sends nothing. A check that
    reports a stall withholds the ping too: systemd then kills and restarts us, which is what
    a daemon that is alive but stuck needs.
    """
    interval = notifier.watchdog_interval
    period = status_period if interval is None else min(interval / 2, status_period)
    stalled: str | None = None
    while True:
        reasons = [reason for check in checks if (reason := check()) is not None]
        if reasons:
            if stalled is None:
                log.error("not pinging the watchdog: %s", "; ".join(reasons))
            stalled = "; ".join(reasons)
            notifier.status(f"stalled: {stalled}")
        else:
            if stalled is not None:
                log.warning("making progress again; watchdog pings resumed")
            stalled = None
            notifier.status(status())
            if interval is not None:
                notifier.watchdog()
        await asyncio.sleep(period)


def stall_check(
    what: str,
    pending: Callable[[], int],
    done: Callable[[], int],
    limit: float,
    clock: Callable[[], float] = time.monotonic,
) -> ProgressCheck:
    """A check that fails once work is waiting but ``done()`` has not moved for ``limit`` s."""
    last_done, since = done(), clock()

    def check() -> str | None:
        nonlocal last_done, since
        now, current = clock(), done()
        if current != last_done or pending() == 0:
            last_done, since = current, now
            return None
        if now - since > limit:
            return f"{what}: {pending()} waiting, none moved for {now - since:.0f}s"
        return None

    return check
