"""``listend status`` and ``listend tail``: clients of a running daemon's control socket.

Plain blocking sockets: a command talks to one daemon and prints what it answers.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from listend.daemon.errors import ListendError
from listend.daemon.events import EventKind
from listend.daemon.service.control_socket import SOCKET_NAME, control_socket_path

#: Where the systemd unit's ``RuntimeDirectory=listend`` puts the socket.
SERVICE_SOCKET = Path("/run/listend") / SOCKET_NAME
KINDS: tuple[EventKind, ...] = (
    "final",
    "interim",
    "utterance_end",
    "speech_started",
    "metadata",
    "phrase",
)


def add_socket_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--socket",
        type=Path,
        help=f"control socket (default: $LISTEND_SOCKET, {SERVICE_SOCKET} if it exists, "
        "else <state_dir>/control.sock of the config)",
    )


def add_tail_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--source", action="append", help="only this source (repeatable)")
    sub.add_argument(
        "--kind", action="append", choices=KINDS, help="only this event kind (repeatable)"
    )
    sub.add_argument(
        "--format", choices=["jsonl", "text"], default="jsonl", help="jsonl (default) or text"
    )


def socket_path(args: argparse.Namespace, state_dir: Path | None) -> Path:
    if args.socket is not None:
        return Path(args.socket)
    if os.environ.get("LISTEND_SOCKET"):
        return Path(os.environ["LISTEND_SOCKET"])
    if state_dir is None:
        return SERVICE_SOCKET
    return control_socket_path(state_dir)


class ControlClient:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(str(path))
        except FileNotFoundError:
            self.sock.close()
            raise ListendError(f"{path}: no daemon listening (is listend running?)") from None
        except PermissionError:
            self.sock.close()
            raise ListendError(
                f"{path}: permission denied: run as root or as a member of the service's group"
            ) from None
        except OSError as exc:
            self.sock.close()
            if exc.errno == errno.ECONNREFUSED:
                raise ListendError(f"{path}: no daemon listening (stale socket)") from None
            raise ListendError(f"{path}: {exc.strerror}") from None
        self.file = self.sock.makefile("rwb")

    def request(self, document: dict[str, Any]) -> None:
        self.file.write(json.dumps(document).encode() + b"\n")
        self.file.flush()

    def lines(self) -> Iterator[dict[str, Any]]:
        for raw in self.file:
            document = json.loads(raw)
            if isinstance(document, dict) and "error" in document:
                raise ListendError(f"{self.path}: the daemon says: {document['error']}")
            yield document

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def status(path: Path, *, as_json: bool, out: TextIO = sys.stdout) -> int:
    client = ControlClient(path)
    try:
        client.request({"cmd": "status"})
        document = next(client.lines(), None)
    finally:
        client.close()
    if document is None:
        raise ListendError(f"{path}: the daemon closed the connection without an answer")
    if as_json:
        out.write(json.dumps(document, indent=2) + "\n")
    else:
        out.write(format_status(document) + "\n")
    return 0


def _seconds(value: float | None) -> str:
    if value is None:
        return "never"
    if value < 120:  # noqa: PLR2004
        return f"{value:.1f}s"
    minutes, seconds = divmod(int(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def format_status(document: dict[str, Any]) -> str:
    up = _seconds(document["uptime_seconds"])
    lines = [f"listend {document['version']}: {document['phase']}, up {up}", "streams:"]
    for name, s in document["streams"].items():
        state = "connected" if s["connected"] else "DISCONNECTED"
        age = s["last_final_age_seconds"]
        lines.append(
            f"  {name:<12} {state:<12} {s['engine']:<8} lag {_seconds(s['lag_seconds'])}, "
            f"last final {'never' if age is None else _seconds(age) + ' ago'}, "
            f"streamed {_seconds(s['seconds_streamed'])}, gated {_seconds(s['seconds_gated'])}"
        )
    if not document["streams"]:
        lines.append("  (none)")
    lines.append("sinks:")
    for name, k in document["sinks"].items():
        state = "connected" if k["connected"] else "UNREACHABLE"
        text = f"  {name:<12} {state:<12} {k['type']:<8} outbox {k['outbox_depth']}"
        if k["failing_since"]:
            text += f", failing since {k['failing_since']}: {k['last_error']}"
        lines.append(text)
    if not document["sinks"]:
        lines.append("  (none)")
    return "\n".join(lines)


def tail(path: Path, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    client = ControlClient(path)
    try:
        client.request({"cmd": "tail", "sources": args.source, "kinds": args.kind})
        for document in client.lines():
            if "tailing" in document:
                continue
            if "dropped" in document:
                sys.stderr.write(f"listend: {document['dropped']} event(s) not shown (too slow)\n")
            elif args.format == "text":
                out.write(format_event(document) + "\n")
                out.flush()
            else:
                out.write(json.dumps(document) + "\n")
                out.flush()
    except KeyboardInterrupt:
        pass  # the usual way to stop tailing
    finally:
        client.close()
    return 0


def format_event(event: dict[str, Any]) -> str:
    """One line: time, source, kind, what was said."""
    kind = event.get("type", "?")
    if kind == "transcript":
        kind = "final" if event.get("is_final") else "interim"
        detail = event.get("text", "")
    elif kind == "phrase":
        detail = f"{event['trigger']} {event['status']}: {event['text']}"
    else:
        detail = ""
    at = event.get("started_at") or event.get("at") or ""
    return f"{at[11:23]} {event.get('source', '?'):<12} {kind:<14} {detail}".rstrip()
