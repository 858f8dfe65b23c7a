"""The control socket that ``listend status`` and ``listend tail`` talk to.

A Unix socket in the runtime directory (``$RUNTIME_DIRECTORY``, systemd's
``RuntimeDirectory=``; else ``state_dir``), mode 0660 with the service's group: the kernel lets
only root, the service's user and that group's members connect, and each connection is checked
again with ``SO_PEERCRED``/``SO_PEERGROUPS`` (a socket whose mode was loosened still refuses
others). One JSON request line per connection: ``{"cmd": "status"}`` answers one JSON line;
``{"cmd": "tail", "sources": [...], "kinds": [...]}`` streams the events the router forwards
(as their JSON, one per line) until the client leaves. A slow tail client never slows the
router: its queue is bounded, and what does not fit is counted and reported as
``{"dropped": N}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
import struct
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from listend import __version__
from listend.daemon.delivery.router import Router
from listend.daemon.delivery.worker import SinkWorker
from listend.daemon.events import AnyEvent, to_json
from listend.daemon.stream.session import StreamSession

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
SOCKET_MODE = 0o660
TAIL_QUEUE_SIZE = 1000
MAX_REQUEST = 4096
REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request line
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux >= 4.13; not in Python's module
MAX_GROUPS = 256


def control_socket_path(state_dir: Path, environ: Mapping[str, str] = os.environ) -> Path:
    """Where the daemon listens: the first ``$RUNTIME_DIRECTORY`` entry, else ``state_dir``."""
    runtime = environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    return (Path(runtime) if runtime else state_dir) / SOCKET_NAME


class ControlSource(Protocol):
    """What the control socket reads of the daemon (the daemon itself)."""

    @property
    def phase(self) -> str: ...

    @property
    def router(self) -> Router: ...

    @property
    def sessions(self) -> Mapping[str, StreamSession]: ...

    @property
    def workers(self) -> Mapping[str, SinkWorker]: ...

    @property
    def started_at(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Peer:
    pid: int
    uid: int
    gid: int
    groups: tuple[int, ...]

    def allowed(self) -> bool:
        """Root, the service's user, or a member of the service's group."""
        gid = os.getegid()
        return self.uid in (0, os.geteuid()) or self.gid == gid or gid in self.groups


def peer_of(sock: socket.socket) -> Peer:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    groups: tuple[int, ...] = ()
    with contextlib.suppress(OSError):  # an older kernel: the primary group only
        data = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 4 * MAX_GROUPS)
        groups = struct.unpack(f"{len(data) // 4}I", data[: len(data) // 4 * 4])
    return Peer(pid, uid, gid, groups)


def _wall(monotonic: float, now: float) -> str:
    return datetime.fromtimestamp(time.time() - (now - monotonic), UTC).isoformat()


def status_of(daemon: ControlSource) -> dict[str, Any]:
    """The ``listend status`` document: each stream and sink as the daemon sees it now."""
    now = time.monotonic()
    streams = {}
    for name, session in daemon.sessions.items():
        stats, buffer = session.stats, session.buffer
        streams[name] = {
            "connected": stats.connected,
            "engine": session.factory.engine,
            "lag_seconds": round(buffer.to_seconds(buffer.end - buffer.covered), 3),
            "last_final_age_seconds": None
            if stats.last_final_at is None
            else round(now - stats.last_final_at, 3),
            "seconds_captured": round(stats.audio_seconds_captured, 3),
            "seconds_gated": round(stats.audio_seconds_captured - stats.audio_seconds_gated_in, 3),
            "seconds_streamed": round(stats.audio_seconds_sent, 3),
            "finals": stats.finals,
            "reconnects": stats.reconnects,
            "spool": session.keeper is not None,
            "unspooled_seconds": round(stats.unspooled_seconds, 3),
        }
    sinks = {}
    for name, worker in daemon.workers.items():
        outage = worker.outage
        failing = outage.down and outage.started is not None
        sinks[name] = {
            "type": worker.sink.type_name,
            "connected": worker.sink.reachable(),
            "outbox_depth": worker.depth(),
            "failing_since": _wall(outage.started, now) if failing and outage.started else None,
            "last_error": outage.last_error if failing else None,
            "delivered": worker.delivered,
            "failed": worker.failed,
        }
    return {
        "version": __version__,
        "phase": daemon.phase,
        "uptime_seconds": round(now - daemon.started_at, 1),
        "streams": streams,
        "sinks": sinks,
    }


class _Tail:
    def __init__(self, sources: Collection[str] | None, kinds: Collection[str] | None) -> None:
        self.sources = None if sources is None else frozenset(sources)
        self.kinds = None if kinds is None else frozenset(kinds)
        self.queue: asyncio.Queue[str] = asyncio.Queue(TAIL_QUEUE_SIZE)
        self.dropped = 0

    def offer(self, event: AnyEvent) -> None:
        if self.sources is not None and event.source not in self.sources:
            return
        if self.kinds is not None and event.kind not in self.kinds:
            return
        try:
            if self.dropped and self.queue.qsize() < TAIL_QUEUE_SIZE - 1:
                self.queue.put_nowait(json.dumps({"dropped": self.dropped}))
                self.dropped = 0
            self.queue.put_nowait(to_json(event))
        except asyncio.QueueFull:
            self.dropped += 1


class ControlServer:
    def __init__(self, daemon: ControlSource, path: Path) -> None:
        self.daemon = daemon
        self.path = path
        self._tails: set[_Tail] = set()
        self._writers: set[asyncio.StreamWriter] = set()  # open connections, closed at the end
        daemon.router.on_event.append(self._offer)

    def _offer(self, event: AnyEvent) -> None:
        for tail in self._tails:
            tail.offer(event)

    async def serve(self) -> None:
        """Listen until cancelled; a socket that cannot be made is a warning, not a failure."""
        try:
            server = await self._listen()
        except OSError as exc:
            log.warning(
                "control socket %s: %s; `listend status`/`tail` unavailable", self.path, exc
            )
            return
        log.info("control socket on %s", self.path)
        try:
            async with server:
                await server.serve_forever()
        finally:
            for writer in list(self._writers):
                writer.close()  # a tail ends when its connection does
            with contextlib.suppress(OSError):
                self.path.unlink()

    async def _listen(self) -> asyncio.Server:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(self.path.lstat().st_mode):
                self.path.unlink()  # left by a daemon that was killed
        self.path.parent.mkdir(parents=True, exist_ok=True)
        server = await asyncio.start_unix_server(self._client, path=str(self.path))
        self.path.chmod(SOCKET_MODE)
        if self.path.stat().st_gid != os.getegid():  # a set-group-ID directory's group
            try:  # the unit's SystemCallFilter (~@privileged) forbids chown: it never needs it
                os.chown(self.path, -1, os.getegid())
            except OSError as exc:
                log.warning("control socket %s: group left as it is: %s", self.path, exc)
        return server

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            peer = peer_of(writer.get_extra_info("socket"))
            async with asyncio.timeout(REQUEST_TIMEOUT):
                line = await reader.readline()  # first, so a refused client reads why
            if not peer.allowed():
                log.warning("control socket: refused uid %d (pid %d)", peer.uid, peer.pid)
                await self._send(writer, {"error": "permission denied"})
                return
            try:
                request = json.loads(line[:MAX_REQUEST]) if line else {}
            except ValueError:
                request = {}
            command = request.get("cmd") if isinstance(request, dict) else None
            if command == "status":
                await self._send(writer, status_of(self.daemon))
            elif command == "tail":
                await self._tail(reader, writer, request.get("sources"), request.get("kinds"))
            else:
                await self._send(writer, {"error": "expected {'cmd': 'status' or 'tail'}"})
        except (ConnectionError, OSError, TimeoutError):
            pass  # the client went away, or never asked
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, document: object) -> None:
        writer.write(json.dumps(document).encode() + b"\n")
        await writer.drain()

    async def _tail(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        sources: list[str] | None,
        kinds: list[str] | None,
    ) -> None:
        tail = _Tail(sources, kinds)
        self._tails.add(tail)
        gone = asyncio.ensure_future(reader.read())  # EOF: the client left
        try:
            await self._send(writer, {"tailing": True})
            while not gone.done():
                line = asyncio.ensure_future(tail.queue.get())
                try:
                    await asyncio.wait([line, gone], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not line.done():
                        line.cancel()
                if line.cancelled():
                    break
                writer.write(line.result().encode() + b"\n")
                await writer.drain()
        finally:
            self._tails.discard(tail)
            gone.cancel()
