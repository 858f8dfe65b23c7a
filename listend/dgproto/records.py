"""What the protocol server keeps about each connection, and whom it lets in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from aiohttp import web

from listend.dgproto.recognizer import StreamParams


@dataclass(eq=False)
class ConnectionRecord:
    """One accepted connection as the server tracks it: live counters and how it ended.

    The server keeps nothing else, so a connection of any length costs the same. The ``on_*``
    methods and :meth:`deadline` are where a subclass (the test kit's recorder, the benchmarks)
    watches or steers the stream; here they do nothing, which is what the local engine runs.
    """

    index: int
    request_id: str
    params: StreamParams
    bytes_received: int = 0
    frames: int = 0
    close_code: int | None = None
    close_reason: str = ""
    closed_by: Literal["client", "server"] | None = None
    opened_at: float = field(default_factory=time.monotonic)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def deadline(self) -> float | None:
        """When (``time.monotonic()``) to call :meth:`on_deadline`; ``None``: never."""
        return None

    async def on_deadline(self, stream: Stream) -> None:
        """The deadline passed; return a new one from :meth:`deadline` or it fires again."""

    async def on_audio(self, stream: Stream, data: bytes) -> None:
        """``data`` arrived (already counted in :attr:`bytes_received` and answered)."""

    def on_control(self, kind: str, raw: str) -> None:
        """A text message arrived: ``kind`` is its ``type`` (``invalid`` if it has none)."""

    def on_sent(self, message: dict[str, Any]) -> None:
        """``message`` just went out to the client."""


class Stream(Protocol):
    """What a :class:`ConnectionRecord` hook may do to its connection."""

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame with ``code`` and end the connection."""

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (the client sees 1006)."""


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
