"""Everything about reaching Deepgram that is not the session's own logic.

Where to connect (base URL -> the SDK's environment), with which query parameters, and what a
failure means: retry with backoff, or stop the source with one clear message.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from deepgram.core.api_error import ApiError
from deepgram.core.jsonable_encoder import jsonable_encoder
from deepgram.core.query_encoder import encode_query
from deepgram.core.remove_none_from_dict import remove_none_from_dict
from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1.socket_client import AsyncV1SocketClient
from websockets.exceptions import WebSocketException
from websockets.legacy.client import connect as websocket_connect
from websockets.legacy.exceptions import InvalidStatusCode

from listend.daemon.errors import AuthError, ConfigError, ListendError
from listend.daemon.plugin.source import AudioFormat
from listend.daemon.plugin.stream_options import StreamOptions

#: Deepgram could not decode the audio (DATA-0000): the same bytes will fail again.
FATAL_CLOSE_CODES = frozenset({1008})
#: Deepgram's err_code for a status, when the status alone says it.
ERR_CODES = {401: "INVALID_AUTH"}
_HTTP_FOR_WS = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
_WS_FOR_HTTP = {"http": "ws", "https": "wss"}


@dataclass
class StreamError(Exception):
    """Why a connection ended or never started, and whether to try again."""

    message: str
    retry: bool
    retry_after: float | None = None
    error: ListendError | None = None  # set when not retrying: what the daemon reports

    def __str__(self) -> str:
        return self.message


def environment_for(url: str) -> DeepgramClientEnvironment:
    """The SDK environment for a base URL (http/https, or ws/wss for the streaming side)."""
    parts = urlsplit(url.strip().rstrip("/"))
    http = _HTTP_FOR_WS.get(parts.scheme)
    if http is None or not parts.netloc:
        msg = f"deepgram.url: expected an http(s):// or ws(s):// URL, found {url!r}"
        raise ConfigError(msg)
    base = urlunsplit((http, parts.netloc, parts.path, "", ""))
    ws = urlunsplit((_WS_FOR_HTTP[http], parts.netloc, parts.path, "", ""))
    return DeepgramClientEnvironment(base=base, production=ws, agent=ws, agent_rest=base)


@dataclass(frozen=True)
class StreamClient:
    """Where a session opens its WebSockets: the ``/v1/listen`` URL of one endpoint.

    The SDK's ``AsyncDeepgramClient`` would do the same from a REST client whose imports
    (httpx, its CLI's click and pygments) and CA bundle are ~7.5 MB of RSS a streaming daemon
    never uses; the socket itself is still the SDK's :class:`AsyncV1SocketClient`."""

    listen_url: str


def make_client(url: str) -> StreamClient:
    return StreamClient(environment_for(url).production + "/v1/listen")


@functools.lru_cache(maxsize=16)
def shared_client(url: str) -> StreamClient:
    """One client per URL for all sessions."""
    return make_client(url)


@functools.cache
def sdk_headers() -> dict[str, str]:
    """The headers the SDK identifies itself with (it reads its version at every connect)."""
    version = importlib.metadata.version("deepgram-sdk")
    return {
        "User-Agent": f"deepgram-sdk/{version}",
        "X-Fern-Language": "Python",
        "X-Fern-SDK-Name": "deepgram-sdk",
        "X-Fern-SDK-Version": version,
    }


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The one client TLS context of every ``wss://`` stream. Left to itself, asyncio builds
    one per connection (websockets passes ``ssl=True``), each loading the system CA store:
    ~0.9 MB of RSS per open stream."""
    return ssl.create_default_context()


@contextlib.asynccontextmanager
async def open_stream(
    client: StreamClient, options: dict[str, Any], authorization: str | None
) -> AsyncIterator[AsyncV1SocketClient]:
    """What ``AsyncDeepgramClient.listen.v1.connect(**options)`` opens, with the SDK's own
    query encoding and errors, without permessage-deflate: websockets enables it by default,
    and compressing PCM saves nothing while each connection's zlib streams hold ~190 kB (and
    cost CPU per chunk); ``wss://`` streams share :func:`tls_context`."""
    url = client.listen_url
    query = encode_query(jsonable_encoder(remove_none_from_dict(options)))
    if query:
        url += "?" + urlencode(query)
    headers = dict(sdk_headers())
    if authorization is not None:
        headers["Authorization"] = authorization
    tls: dict[str, Any] = {"ssl": tls_context()} if url.startswith("wss:") else {}
    try:
        async with websocket_connect(url, extra_headers=headers, compression=None, **tls) as ws:
            yield AsyncV1SocketClient(websocket=ws)
    except InvalidStatusCode as exc:  # as the SDK reports it, less the request's headers
        body = "the WebSocket handshake was refused"
        raise ApiError(status_code=exc.status_code, headers=dict(exc.headers), body=body) from exc


def check_stream_format(source: str, options: StreamOptions, fmt: AudioFormat) -> None:
    """A format out of range, or an explicit encoding/sample_rate/channels that contradicts
    the source, is a config error (checked by `validate` and again when the session starts)."""
    if (problem := fmt.problem()) is not None:
        raise ConfigError(f"source {source}: the source's audio format: {problem}")
    problems = [
        f"stream.{key} is {given!r} but the source delivers {actual!r}"
        for key, given, actual in (
            ("encoding", options.encoding, fmt.encoding),
            ("sample_rate", options.sample_rate, fmt.sample_rate),
            ("channels", options.channels, fmt.channels),
        )
        if given is not None and given != actual
    ]
    if problems:
        msg = (
            f"source {source}: "
            + "; ".join(problems)
            + " (remove the setting: it follows the source)"
        )
        raise ConfigError(msg)


def connect_options(options: StreamOptions, fmt: AudioFormat) -> dict[str, Any]:
    """Keyword arguments for ``listen.v1.connect``: the options plus the source's format."""
    query = options.query()
    query.update(encoding=fmt.encoding, sample_rate=fmt.sample_rate, channels=fmt.channels)
    query.setdefault("model", None)  # the SDK requires the keyword; None leaves Deepgram's default
    return query


def handshake_failure(exc: BaseException, source: str) -> StreamError:
    """Classify an exception raised while opening the stream; re-raise what is a bug."""
    if isinstance(exc, ApiError):
        return _status_failure(exc, source)
    if isinstance(exc, (OSError, TimeoutError, WebSocketException, asyncio.IncompleteReadError)):
        return StreamError(f"cannot connect: {_describe(exc)}", retry=True)
    raise exc


def _status_failure(exc: ApiError, source: str) -> StreamError:
    status = exc.status_code or 0
    headers: Any = getattr(exc.__context__, "headers", None) or {}
    dg_error = headers.get("dg-error")
    request_id = headers.get("dg-request-id")
    detail = f"HTTP {status}"
    if status in ERR_CODES:
        detail += f" {ERR_CODES[status]}"
    if dg_error:
        detail += f": {dg_error}"
    if request_id:
        detail += f" (dg-request-id {request_id})"
    if status == 429 or status >= 500:  # noqa: PLR2004 - too many streams, server trouble
        return StreamError(
            f"Deepgram refused the stream for now: {detail}",
            retry=True,
            retry_after=_retry_after(headers.get("retry-after")),
        )
    if status in (401, 403):
        hint = (
            "check deepgram.api_key, $DEEPGRAM_API_KEY or the credential deepgram, "
            "or deepgram.access_token"
        )
        message = f"Deepgram refused the credentials for source {source}: {detail}; {hint}"
        return StreamError(message, retry=False, error=AuthError(message))
    message = f"Deepgram refused the stream of source {source}: {detail}"
    if status == 400:  # noqa: PLR2004
        message += "; check deepgram.options and the source's stream: settings"
    return StreamError(message, retry=False, error=ListendError(message))


def close_failure(code: int | None, reason: str, source: str) -> StreamError:
    """Classify a close we did not ask for."""
    described = f"{code if code is not None else 'no close code'} {reason}".strip()
    if code in FATAL_CLOSE_CODES:
        message = (
            f"Deepgram closed the stream of source {source} with {described}: it could not "
            "decode the audio (does the source's format match what it sends?)"
        )
        return StreamError(message, retry=False, error=ListendError(message))
    return StreamError(f"connection closed: {described}", retry=True)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
