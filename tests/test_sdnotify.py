"""sd_notify over a real AF_UNIX datagram socket, as systemd binds it."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from listend.daemon.service.sdnotify import Notifier, run_heartbeat, stall_check, watchdog_interval

DEADLINE = 20.0  # generous: the CPU is shared


class NotifyListener:
    """The systemd side: a bound datagram socket collecting parsed messages."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)

    def pending(self) -> list[dict[str, str]]:
        """Everything received so far, without waiting."""
        out = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(_parse(self.sock.recv(4096)))
        except BlockingIOError:
            return out
        finally:
            self.sock.setblocking(True)

    def next(self, timeout: float = DEADLINE) -> dict[str, str]:
        self.sock.settimeout(timeout)
        return _parse(self.sock.recv(4096))

    def close(self) -> None:
        self.sock.close()


def _parse(data: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in data.decode().splitlines())


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[NotifyListener, str]]:
    path = tmp_path / "notify.sock"
    sock = NotifyListener(str(path))
    yield sock, str(path)
    sock.close()


def test_messages_reach_a_path_socket(listener) -> None:
    sock, path = listener
    env = {"NOTIFY_SOCKET": path}
    notifier = Notifier(env)
    assert notifier.enabled
    assert "NOTIFY_SOCKET" not in env, "children must not inherit the socket"
    assert notifier.ready("2/2 streams up")
    assert sock.next() == {"READY": "1", "STATUS": "2/2 streams up"}
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    message = sock.next()
    assert message["RELOADING"] == "1"
    assert int(message["MONOTONIC_USEC"]) >= before
    notifier.status("line one\nline two")
    assert sock.next() == {"STATUS": "line one line two"}
    notifier.stopping()
    assert sock.next() == {"STOPPING": "1"}
    notifier.close()


def test_abstract_namespace_socket() -> None:
    name = f"listend-test-{uuid.uuid4().hex}"
    sock = NotifyListener(b"\0" + name.encode())
    try:
        notifier = Notifier({"NOTIFY_SOCKET": f"@{name}"})
        assert notifier.watchdog()
        assert sock.next() == {"WATCHDOG": "1"}
        notifier.close()
    finally:
        sock.close()


def test_no_socket_is_a_quiet_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.ready()
    assert notifier.watchdog_interval is None


def test_gone_socket_does_not_raise(tmp_path: Path, caplog) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})
    assert not notifier.watchdog()
    assert not notifier.watchdog()
    assert len([r for r in caplog.records if "sd_notify" in r.message]) == 1
    notifier.close()


def test_watchdog_interval_respects_watchdog_pid() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    mine = str(os.getpid())
    assert watchdog_interval({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": mine}) == 4.0
    # meant for another process (e.g. the parent that exec'd us): not ours to ping
    assert watchdog_interval({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    env = {"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": mine, "NOTIFY_SOCKET": "/nonexistent"}
    assert Notifier(env).watchdog_interval == 4.0
    assert env == {}


def test_heartbeat_stops_while_the_loop_is_blocked(listener) -> None:
    """A wedged loop sends no WATCHDOG=1, so systemd's watchdog fires."""
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})

    async def scenario() -> None:
        beat = asyncio.create_task(
            run_heartbeat(notifier, checks=[], status=lambda: "ok", status_period=5.0)
        )
        await asyncio.to_thread(_wait_for, sock, "WATCHDOG")
        await asyncio.sleep(0)
        sock.pending()  # forget what was sent before the loop wedges
        time.sleep(1.0)  # the loop is wedged: 5 ping periods pass
        assert [m for m in sock.pending() if "WATCHDOG" in m] == []
        await asyncio.to_thread(_wait_for, sock, "WATCHDOG")  # unblocked: pings resume
        beat.cancel()
        with pytest.raises(asyncio.CancelledError):
            await beat

    asyncio.run(scenario())
    notifier.close()


def test_heartbeat_withholds_the_ping_while_a_check_reports_a_stall(listener) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    stuck: list[str] = ["router: 3 waiting, none moved for 61s"]

    async def scenario() -> None:
        beat = asyncio.create_task(
            run_heartbeat(notifier, checks=[lambda: stuck[0] if stuck else None], status=str)
        )
        message = await asyncio.to_thread(_wait_for, sock, "STATUS")
        assert message == {"STATUS": "stalled: router: 3 waiting, none moved for 61s"}
        for _ in range(3):
            message = await asyncio.to_thread(sock.next)
            assert "WATCHDOG" not in message
        stuck.clear()
        await asyncio.to_thread(_wait_for, sock, "WATCHDOG")
        beat.cancel()
        with pytest.raises(asyncio.CancelledError):
            await beat

    asyncio.run(scenario())
    notifier.close()


def _wait_for(sock: NotifyListener, key: str) -> dict[str, str]:
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        message = sock.next(timeout=end - time.monotonic())
        if key in message:
            return message
    raise AssertionError(f"no {key}= within {DEADLINE}s")


def test_stall_check_needs_waiting_work_and_no_movement() -> None:
    now = [0.0]
    pending, done = [0], [0]
    check = stall_check("router", lambda: pending[0], lambda: done[0], 60, clock=lambda: now[0])
    now[0] = 100
    assert check() is None  # nothing waiting: idle, not stuck
    pending[0] = 2
    now[0] = 150
    assert check() is None
    now[0] = 161
    reason = check()
    assert reason is not None
    assert reason.startswith("router: 2 waiting")
    done[0] = 1  # it moved
    assert check() is None
