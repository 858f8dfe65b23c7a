"""A real HTTP server on loopback (the standard library's, in a thread) recording requests.

It answers with scripted statuses first, then 200, so one receiver serves the webhook sink's
retry tests, the daemon's http sink and ``transcribe --callback``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """``with Receiver() as hook:`` ... ``hook.url``, ``hook.requests``."""

    def __init__(self, path: str = "/hook") -> None:
        self.script: list[tuple[int, dict[str, str]]] = []  # (status, headers), then 200s
        self._requests: list[Request] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, headers = receiver._record(self.command, self.path, self.headers, body)
                payload = b'{"error": "nope"}' if status >= 300 else b"ok"
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_PUT = _answer  # noqa: N815 - http.server's naming

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}{path}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _record(
        self, method: str, path: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, str]]:
        with self._lock:
            status, extra = self.script.pop(0) if self.script else (200, {})
            self._requests.append(Request(method, path, dict(headers), body, status))
        return status, extra

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    @property
    def events(self) -> list[Any]:
        """Every request body, parsed as JSON."""
        return [r.json() for r in self.requests]

    def answered(self, status: int) -> list[bytes]:
        return [r.body for r in self.requests if r.status == status]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
