"""Where a test kit or a benchmark plugs into the protocol server; the base plugs in nothing.

The local engine runs the server with :class:`ServerHooks` as is: it refuses only what
Deepgram would refuse and keeps only live counters per connection. ``listend.testing`` fills
these hooks to plan refusals, drops and stalls and to record what each connection did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from listend.dgproto.recognizer import StreamParams
from listend.dgproto.records import ConnectionRecord, Refusal


@dataclass(frozen=True, slots=True)
class Rejection:
    """An HTTP error to answer a handshake with instead of upgrading it."""

    status: int
    err_code: str
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)


class ServerHooks:
    """Told about each handshake; makes the record that each accepted connection updates."""

    def rejection(self, _request: web.Request) -> Rejection | None:
        """Called first on every handshake (before auth): an answer other than upgrading."""
        return None

    def refused(self, refusal: Refusal) -> None:
        """A handshake was answered with an HTTP error."""

    def open(
        self, _request: web.Request, index: int, request_id: str, params: StreamParams
    ) -> ConnectionRecord:
        """The record of the connection being accepted (a subclass to watch it)."""
        return ConnectionRecord(index, request_id, params)
