"""``GET /search`` over HTTP: the history search, read-only, for the captions page's server.

``/search?q=WORDS[&source=S...][&since=2h][&until=...][&limit=N]`` answers
``{"results": [{"event": {...}, "snippet": "... <mark>word</mark> ..."}]}``, oldest first. The
database is opened read-only per request, in a thread (never on the event loop).
"""

from __future__ import annotations

import asyncio
import functools
import html
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from listend.plugins.history_store import HistoryStore, Hit, parse_when

if TYPE_CHECKING:
    from aiohttp import web

MAX_LIMIT = 500
#: Snippet marks that cannot collide with escaped text (replaced by <mark> after escaping).
_OPEN, _CLOSE = "\x02", "\x03"


def _search(
    path: Path,
    query: str,
    *,
    sources: list[str],
    since: float | None,
    until: float | None,
    limit: int,
) -> list[Hit]:
    store = HistoryStore(path, readonly=True)
    try:
        return store.search(
            query, sources=sources, since=since, until=until, limit=limit, marks=(_OPEN, _CLOSE)
        )
    finally:
        store.close()


def search_handler(path: Path) -> Callable[[web.Request], Awaitable[web.Response]]:
    from aiohttp import web  # noqa: PLC0415 - only servers that serve it pay for aiohttp

    async def search(request: web.Request) -> web.Response:
        query = request.query
        try:
            since = parse_when(query["since"]) if "since" in query else None
            until = parse_when(query["until"]) if "until" in query else None
            limit = min(int(query.get("limit", "50")), MAX_LIMIT)
            hits = await asyncio.to_thread(
                functools.partial(
                    _search,
                    path,
                    query.get("q", ""),
                    sources=query.getall("source", []),
                    since=since,
                    until=until,
                    limit=limit,
                )
            )
        except FileNotFoundError:
            return web.json_response({"error": "no history (add a history sink)"}, status=404)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        results = [{"event": hit.event, "snippet": _marked(hit.snippet)} for hit in hits]
        return web.json_response({"results": results})

    return search


def _marked(snippet: str) -> str:
    return html.escape(snippet).replace(_OPEN, "<mark>").replace(_CLOSE, "</mark>")
