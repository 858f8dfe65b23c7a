"""What the protocol server records about each connection, and whom it lets in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from listend.dgproto.faults import ConnectionFault
from listend.dgproto.recognizer import StreamParams


@dataclass(frozen=True, slots=True)
class ControlMessage:
    """A text message the client sent, with how much audio had arrived before it."""

    type: str
    at_byte: int
    at: float  # seconds since the connection opened
    raw: str


@dataclass(eq=False)
class ConnectionRecord:
    """Everything one connection received and how it ended (for tests and debugging)."""

    index: int
    request_id: str
    params: StreamParams
    query: list[tuple[str, str]]
    authorization: str | None
    fault: ConnectionFault | None = None
    audio: bytearray = field(default_factory=bytearray)
    bytes_received: int = 0
    frames: int = 0
    controls: list[ControlMessage] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    closed_by: Literal["client", "server"] | None = None
    opened_at: float = field(default_factory=time.monotonic)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def control_types(self) -> list[str]:
        return [c.type for c in self.controls]

    def finals(self) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("type") == "Results" and m.get("is_final")]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A handshake the server answered with an HTTP error instead of upgrading."""

    status: int
    err_code: str
    message: str
    request_id: str
    at: float = field(default_factory=time.monotonic)


class Credentials:
    """Accepted API keys (``Token``) and access tokens (``Bearer``); none at all: open."""

    def __init__(self, api_keys: Iterable[str] = (), access_tokens: Iterable[str] = ()) -> None:
        self.api_keys = set(api_keys)
        self.access_tokens = set(access_tokens)

    @property
    def open(self) -> bool:
        return not self.api_keys and not self.access_tokens

    def allows(self, request: web.Request) -> bool:
        if self.open:
            return True
        scheme, _, secret = request.headers.get("Authorization", "").strip().partition(" ")
        if not secret:  # browsers cannot set headers: Sec-WebSocket-Protocol: token, <key>
            offered = [
                p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            ]
            if len(offered) == 2:  # noqa: PLR2004 - scheme and secret
                scheme, secret = offered
        scheme = scheme.lower()
        if scheme == "token":
            return secret.strip() in self.api_keys
        if scheme == "bearer":
            return secret.strip() in self.access_tokens
        return False
