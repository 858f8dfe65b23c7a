"""The ``captions`` sink: a live-captions web page for kiosk screens, pushed over WebSocket.

``deliver`` never waits for a browser: each page has a small coalescing buffer of line updates
(the latest state of each line wins), so a slow page skips intermediate hypotheses and a gone
page costs nothing. Lines are not durable; a page that (re)connects gets the recent history.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import socket
from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from listend.api import (
    AnyEvent,
    EventKind,
    ListendError,
    PluginContext,
    Sink,
    SinkConfig,
    __version__,
)

if TYPE_CHECKING:  # aiohttp (10 MB of RSS) is imported once a captions sink runs; the board,
    # the search handler and html's entity table once one is built
    from aiohttp import web

    from listend.plugins.captions_board import CaptionLine

log = logging.getLogger(__name__)

#: Distinct lines waiting for one page before it counts as stuck and is disconnected.
MAX_PENDING_LINES = 500
#: Seconds one WebSocket send may take before the page's connection is dropped.
SEND_TIMEOUT = 20.0
HEARTBEAT = 15.0
#: Pages send nothing (pings and the close are control frames): a data frame is a stray or
#: hostile client, and this bounds what aiohttp buffers before it can be refused.
MAX_CLIENT_MESSAGE = 1024
_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d{1,5})$")


def _address(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[V6]:PORT``; no host: every interface) as a (host, port) pair."""
    match = _LISTEN.match(listen)
    if match is None or not 0 < int(match["port"]) < 65536:  # noqa: PLR2004
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")
    return (match["v6"] or match["host"] or "0.0.0.0", int(match["port"]))  # noqa: S104


_CSS_LENGTH = r"^\d+(\.\d+)?(px|pt|em|rem|vh|vw|vmin|vmax)$"
_PLACEHOLDER = re.compile(r"\{\{(lang|theme|title|settings)\}\}")
_PAGE_SECURITY_HEADERS = {
    # Self-contained page: inline style and script, its own WebSocket, nothing else.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _default_receive() -> list[EventKind]:
    return ["final", "interim", "utterance_end"]


class CaptionsSinkConfig(SinkConfig):
    receive: list[EventKind] = Field(
        default_factory=_default_receive,
        description="event kinds shown: interim text is overwritten, finals committed",
    )
    listen: str = Field(
        default="127.0.0.1:8080",
        description="HOST:PORT to serve the page on ([::1]:8080 for IPv6; 0.0.0.0:8080 for all)",
    )
    lines: int = Field(default=3, ge=1, le=50, description="rows of text visible on the page")
    font_size: str = Field(
        default="6vh",
        pattern=_CSS_LENGTH,
        description="CSS length: 48px, 3rem, 6vh (6% of the screen height) ...",
    )
    theme: Literal["dark", "light"] = Field(default="dark", description="page colours")
    position: Literal["bottom", "middle", "full"] = Field(
        default="bottom",
        description="where the text sits: bottom, middle, or full (as many rows as fit)",
    )
    lang: str = Field(
        default="en",
        pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$",
        description="language of the captions (the page's lang attribute, for screen readers)",
    )
    history: int = Field(
        default=50, ge=1, le=1000, description="committed lines per source kept for new pages"
    )
    title: str = Field(default="Live captions", max_length=200, description="page title")
    search_db: str | None = Field(
        default="history.sqlite3",
        description="history database (relative to state_dir) that /search reads; null: none",
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        _address(value)
        return value

    def address(self) -> tuple[str, int]:
        return _address(self.listen)


class _ClientErrorLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp logs a malformed request (a URL over 8 KB, garbage instead of HTTP) as an
    error with a traceback; it is the client's mistake, answered with a 4xx: one line."""

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        from aiohttp.http_exceptions import HttpProcessingError  # noqa: PLC0415

        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            name = (self.extra or {}).get("name")
            log.info("captions sink %s: refused a malformed request: %s", name, exc)
            return
        kwargs.setdefault("exc_info", True)  # what .exception() does
        self.logger.error(msg, *args, **kwargs)


class _Page:
    """One connected page: the source it shows and its coalescing buffer of line updates."""

    def __init__(self, ws: web.WebSocketResponse, source: str | None) -> None:
        self.ws = ws
        self.source = source
        self.pending: dict[int, dict[str, Any]] = {}
        self.wakeup = asyncio.Event()
        self.stuck = False

    def offer(self, line: CaptionLine) -> None:
        if self.source is not None and line.source != self.source:
            return
        if len(self.pending) >= MAX_PENDING_LINES and line.id not in self.pending:
            self.stuck = True
            self.pending.clear()
        else:
            self.pending[line.id] = line.message()
        self.wakeup.set()


class CaptionsSink(Sink):
    type_name = "captions"
    config_model = CaptionsSinkConfig
    config: CaptionsSinkConfig
    max_batch = 256

    def __init__(self, name: str, config: Any, context: PluginContext) -> None:
        from listend.plugins.captions_board import CaptionBoard  # noqa: PLC0415

        super().__init__(name, config, context)
        self.board = CaptionBoard(history=self.config.history)
        self.pages: set[_Page] = set()
        self._runner: web.AppRunner | None = None
        self._boot = secrets.token_hex(6)
        self._template = (
            resources.files("listend.plugins").joinpath("captions_page.html").read_text("utf-8")
        )
        self.url = ""

    async def start(self) -> None:
        from aiohttp import web  # noqa: PLC0415

        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/source/{source}", self._page)
        app.router.add_get("/ws", self._websocket)
        if self.config.search_db is not None:  # read-only, like the page
            from listend.plugins.history_http import search_handler  # noqa: PLC0415

            app.router.add_get(
                "/search", search_handler(self.context.state_dir / self.config.search_db)
            )
        app.on_shutdown.append(self._close_pages)
        errors = _ClientErrorLog(logging.getLogger("aiohttp.server"), {"name": self.name})
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0, logger=errors)
        await runner.setup()
        host, port = self.config.address()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            msg = f"captions sink {self.name}: cannot listen on {self.config.listen}: {exc}"
            raise ListendError(msg) from None
        self._runner = runner
        self.url = f"http://{self.config.listen}/"
        log.info("captions sink %s: serving live captions on %s", self.name, self.url)

    def page_url(self) -> str | None:
        """The page's address as another machine reaches it (None when it is loopback only)."""
        host, port = self.config.address()
        if host in {"0.0.0.0", "::"}:  # noqa: S104 - every interface: the host's name
            host = socket.gethostname()
        elif host.startswith("127.") or host in {"::1", "localhost"}:
            return None
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def reachable(self) -> bool:
        return self._runner is not None

    async def deliver(self, events: Sequence[AnyEvent]) -> None:
        for event in events:
            for line in self.board.apply(event):
                for page in self.pages:
                    page.offer(line)
        await asyncio.sleep(0)  # let page writers run between batches of a backlog

    # -- HTTP -------------------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.Response:
        import html  # noqa: PLC0415 - its entity table (0.4 MB) only once a page is served

        from aiohttp import web  # noqa: PLC0415

        source = request.match_info.get("source")
        if source is not None and source not in self.known_sources():
            return self._no_such_source(source)
        cfg = self.config
        settings = {"source": source, "version": __version__, **self._look()}
        title = f"{cfg.title} \N{EM DASH} {source}" if source else cfg.title
        values = {
            "lang": html.escape(cfg.lang),
            "theme": cfg.theme,
            "title": html.escape(title),
            "settings": json.dumps(settings).replace("<", "\\u003c"),
        }
        page = _PLACEHOLDER.sub(lambda match: values[match[1]], self._template)
        return web.Response(
            text=page, content_type="text/html", charset="utf-8", headers=_PAGE_SECURITY_HEADERS
        )

    def known_sources(self) -> list[str]:
        """The sources routed to this sink, and any it has shown captions of."""
        return sorted({*self.context.sources, *self.board.sources()})

    def _no_such_source(self, source: str) -> web.Response:
        import html  # noqa: PLC0415 - see _page

        from aiohttp import web  # noqa: PLC0415

        known = self.known_sources()
        items = "".join(
            f'<li><a href="/source/{html.escape(name)}">{html.escape(name)}</a></li>'
            for name in known
        )
        listing = f"<ul>{items}</ul>" if known else "<p>No sources yet.</p>"
        body = (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>No source {html.escape(source)}</title></head><body>"
            f"<h1>No source {html.escape(source)!s}</h1>"
            f'<p>The sources here are listed below; <a href="/">all of them together</a>.</p>'
            f"{listing}</body></html>"
        )
        return web.Response(
            status=404,
            text=body,
            content_type="text/html",
            charset="utf-8",
            headers=_PAGE_SECURITY_HEADERS,
        )

    def _look(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "lines": cfg.lines,
            "fontSize": cfg.font_size,
            "theme": cfg.theme,
            "position": cfg.position,
        }

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        from aiohttp import WSCloseCode, web  # noqa: PLC0415

        source = request.query.get("source") or None
        ws = web.WebSocketResponse(
            heartbeat=HEARTBEAT, timeout=2.0, max_msg_size=MAX_CLIENT_MESSAGE
        )
        await ws.prepare(request)
        page = _Page(ws, source)
        hello = {
            "t": "hello",
            "boot": self._boot,
            "version": __version__,
            "look": self._look(),
            "sources": self.board.sources(),
            "lines": [line.message() for line in self.board.snapshot(source)],
        }
        self.pages.add(page)
        writer = asyncio.create_task(self._write(page, request, hello), name="captions-page")
        try:
            async for _message in ws:  # reading handles ping/close; pages send no data
                await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"pages send nothing")
        finally:
            self.pages.discard(page)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        return ws

    async def _write(self, page: _Page, request: web.Request, hello: dict[str, Any]) -> None:
        from aiohttp import WSCloseCode  # noqa: PLC0415

        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await page.ws.send_json(hello)
            while not page.ws.closed:
                await page.wakeup.wait()
                page.wakeup.clear()
                if page.stuck:
                    log.warning("captions sink %s: a page fell behind; disconnecting it", self.name)
                    await page.ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow")
                    return
                lines, page.pending = list(page.pending.values()), {}
                async with asyncio.timeout(SEND_TIMEOUT):
                    await page.ws.send_json({"t": "lines", "lines": lines})
        except (TimeoutError, ConnectionError) as exc:
            log.info("captions sink %s: dropping a page: %r", self.name, exc)
            if request.transport is not None:
                request.transport.abort()

    async def _close_pages(self, _app: web.Application) -> None:
        from aiohttp import WSCloseCode  # noqa: PLC0415

        await asyncio.gather(
            *(
                page.ws.close(code=WSCloseCode.GOING_AWAY, message=b"listend stopping")
                for page in list(self.pages)
            ),
            return_exceptions=True,
        )
