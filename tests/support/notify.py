"""The systemd side of sd_notify, for tests of a real ``listend run``: a bound datagram socket."""

from __future__ import annotations

import socket
import time
import uuid


class Notifications:
    """What systemd would receive on NOTIFY_SOCKET (abstract namespace: no path length limit)."""

    def __init__(self) -> None:
        self.name = f"@listend-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + self.name[1:].encode())
        self.seen: list[dict[str, str]] = []

    def wait_for(self, key: str, timeout: float = 60.0) -> dict[str, str]:
        """The next message (after those already consumed) that has ``key``."""
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                break
            message = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.seen.append(message)
            if key in message:
                return message
        raise AssertionError(f"no {key}= within {timeout}s; got {self.seen}")

    def close(self) -> None:
        self.sock.close()
