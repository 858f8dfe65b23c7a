"""``POST /v1/listen`` on the local engine: Deepgram's prerecorded API, callbacks included.

The body is raw audio (streamed through the decoder as it arrives, never held whole) or JSON
``{"url": ...}`` fetched by the engine. With ``callback=URL`` the answer is ``{"request_id"}``
at once and the full result is POSTed (or PUT, ``callback_method``) to the URL when done.
Both make the engine reach out to any address, so both are refused (403) unless enabled
(``listend transcribe`` enables what its command line asks for). Every request must carry the
engine's token (401 otherwise).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import aiohttp
from aiohttp import web

from listend.daemon.config.urls import redact_url
from listend.daemon.retry.backoff import Backoff
from listend.dgproto.recognizer import Hypothesis, Recognizer, StreamParams
from listend.dgproto.records import Credentials
from listend.engine.containers import CHUNK, PcmFormat, open_audio
from listend.engine.formats import SAMPLE_WIDTHS, UnsupportedAudio
from listend.engine.prerecorded import BadOptions, PrerecordedOptions, build_response
from listend.engine.workers import EngineError

log = logging.getLogger(__name__)

MAX_CALLBACK_BODY = 512 * 1024 * 1024  # a callback request's upload is kept until decoded
CALLBACK_ATTEMPTS = 5
_CAST: dict[int, Literal["B", "h", "i"]] = {1: "B", 2: "h", 4: "i"}
Chunks = AsyncIterator[bytes]
RecognizerFactory = Callable[[StreamParams], Recognizer]
#: What the Whisper engine does of the features pocketsphinx cannot.
SUPPORTED_BY = {"whisper": frozenset({"numerals"}), "wyoming": frozenset({"numerals"})}


class RequestFailed(Exception):  # noqa: N818 - reads as the reason in `raise`
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class PrerecordedRoute:
    def __init__(
        self,
        recognizer: RecognizerFactory,
        credentials: Credentials,
        *,
        allow_url: bool = False,
        allow_callback: bool = False,
        callback_backoff: Backoff | None = None,
    ) -> None:
        self._recognizer = recognizer
        self._credentials = credentials
        self.allow_url = allow_url
        self.allow_callback = allow_callback
        self._jobs: set[asyncio.Task[None]] = set()
        self._backoff = callback_backoff or Backoff(initial=1.0, cap=30.0)
        #: Called with the seconds of audio decoded so far (`listend transcribe`'s progress).
        self.on_decoded: Callable[[float], None] | None = None

    def add_to(self, app: web.Application) -> None:
        app.router.add_post("/v1/listen", self.handle)
        app.on_shutdown.append(self._on_shutdown)

    async def handle(self, request: web.Request) -> web.Response:
        request_id = str(request.get("dg_request_id") or uuid.uuid4())
        if not self._credentials.allows(request):
            return _error(401, "Invalid credentials.", request_id)
        try:
            options = PrerecordedOptions.from_query(
                {key: request.query.getall(key) for key in request.query}
            )
            declared = _declared_format(options)
            url = await self._url_if_allowed(request, options)
            if options.callback is not None:
                chunks = await self._accept_callback_body(request, url)
                self._start_job(request_id, options, options.callback, declared, chunks)
                return web.json_response({"request_id": request_id})
            source = _fetch(url) if url is not None else request.content.iter_chunked(CHUNK)
            result = await self.transcribe(source, declared, options, request_id)
        except (BadOptions, UnsupportedAudio) as exc:
            return _error(400, str(exc), request_id)
        except RequestFailed as exc:
            return _error(exc.status, str(exc), request_id)
        except EngineError as exc:
            return _error(503, str(exc), request_id)
        return web.json_response(result)

    async def _url_if_allowed(
        self, request: web.Request, options: PrerecordedOptions
    ) -> str | None:
        """The ``{"url": ...}`` to fetch, if any; 403 for what this engine was not allowed."""
        url = await _json_url(request) if request.content_type == "application/json" else None
        if url is not None and not self.allow_url:
            raise RequestFailed(403, "this engine does not fetch URLs: send the audio")
        if options.callback is not None and not self.allow_callback:
            raise RequestFailed(403, "callbacks are not enabled on this engine")
        return url

    async def transcribe(
        self,
        chunks: Chunks,
        declared: PcmFormat | None,
        options: PrerecordedOptions,
        request_id: str,
    ) -> dict[str, Any]:
        digest = hashlib.sha256()

        async def hashed() -> Chunks:
            async for chunk in chunks:
                digest.update(chunk)
                yield chunk

        fmt, pcm = await open_audio(hashed(), declared)
        split = options.multichannel and fmt.channels > 1
        params = StreamParams(
            encoding=fmt.encoding,
            sample_rate=fmt.sample_rate,
            channels=1 if split else fmt.channels,
            endpointing=round(options.utt_split * 1000),
            punctuate=options.punctuated,
            smart_format=options.smart_format,
            numerals=options.numerals,
            prerecorded=True,
            language=options.language,
            keywords=options.keywords,
            keyterm=options.keyterm,
        )
        recognizers = [self._recognizer(params) for _ in range(fmt.channels if split else 1)]
        finals: list[list[Hypothesis]] = [[] for _ in recognizers]
        frame_bytes = SAMPLE_WIDTHS[fmt.encoding] * fmt.channels
        frames = 0
        try:
            pending = b""
            async for chunk in pcm:
                data = pending + chunk
                usable = len(data) - len(data) % frame_bytes
                pending = data[usable:]
                frames += usable // frame_bytes
                parts = _split_channels(data[:usable], fmt) if split else [data[:usable]]
                outputs = await asyncio.gather(
                    *(r.feed(part) for r, part in zip(recognizers, parts, strict=True))
                )
                _collect(finals, outputs)
                if self.on_decoded is not None:
                    self.on_decoded(frames / fmt.sample_rate)
            _collect(finals, await asyncio.gather(*(r.close() for r in recognizers)))
        finally:
            await asyncio.gather(*(r.aclose() for r in recognizers), return_exceptions=True)
        warnings = sorted({w for r in recognizers for w in getattr(r, "warnings", ())})
        info = recognizers[0].info
        supported = SUPPORTED_BY.get(info.arch, frozenset())
        ignored = tuple(key for key in options.ignored if key not in supported)
        return build_response(
            request_id=request_id,
            sha256=digest.hexdigest(),
            duration=frames / fmt.sample_rate,
            channels=finals,
            options=dataclasses.replace(options, ignored=ignored),
            info=info,
            warnings=warnings,
        )

    # -- callbacks ----------------------------------------------------------------------------

    async def _accept_callback_body(
        self, request: web.Request, url: str | None
    ) -> Callable[[], Chunks]:
        """What the background job will read: the URL, or the upload kept in memory."""
        if url is not None:
            return lambda: _fetch(url)
        body = bytearray()
        async for chunk in request.content.iter_chunked(CHUNK):
            body += chunk
            if len(body) > MAX_CALLBACK_BODY:
                raise RequestFailed(413, "upload too large for a callback request")
        data = bytes(body)

        async def replay() -> Chunks:
            for offset in range(0, len(data), CHUNK):
                yield data[offset : offset + CHUNK]

        return replay

    def _start_job(
        self,
        request_id: str,
        options: PrerecordedOptions,
        callback: str,
        declared: PcmFormat | None,
        chunks: Callable[[], Chunks],
    ) -> None:
        job = asyncio.create_task(
            self._callback_job(request_id, options, callback, declared, chunks),
            name=f"listend[engine-callback:{request_id}]",
        )
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _callback_job(
        self,
        request_id: str,
        options: PrerecordedOptions,
        callback: str,
        declared: PcmFormat | None,
        chunks: Callable[[], Chunks],
    ) -> None:
        try:
            body = await self.transcribe(chunks(), declared, options, request_id)
        except (UnsupportedAudio, RequestFailed, EngineError) as exc:
            body = {"err_code": "Bad Request", "err_msg": str(exc), "request_id": request_id}
        payload = json.dumps(body).encode()
        shown = redact_url(callback)  # a password in it stays out of the log
        backoff = Backoff(initial=self._backoff.initial, cap=self._backoff.cap)
        headers = {"Content-Type": "application/json", "dg-request-id": request_id}
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for attempt in range(1, CALLBACK_ATTEMPTS + 1):
                try:
                    async with session.request(
                        options.callback_method, callback, data=payload, headers=headers
                    ) as response:
                        if response.status < 300:  # noqa: PLR2004
                            log.info("callback %s: delivered to %s", request_id, shown)
                            return
                        problem = f"HTTP {response.status}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    problem = str(exc) or type(exc).__name__
                log.warning(
                    "callback %s: attempt %d to %s failed: %s",
                    request_id,
                    attempt,
                    shown,
                    problem,
                )
                if attempt < CALLBACK_ATTEMPTS:
                    await backoff.wait()
        log.error("callback %s: giving up on %s", request_id, shown)

    async def wait_for_callbacks(self) -> None:
        """Until every accepted callback request has been delivered (or given up)."""
        while self._jobs:
            await asyncio.gather(*self._jobs, return_exceptions=True)

    async def _on_shutdown(self, _app: web.Application) -> None:
        await self.close()

    async def close(self) -> None:
        """Abandon unfinished callback jobs (they are logged)."""
        for job in list(self._jobs):
            log.warning("shutting down: %s abandoned", job.get_name())
            job.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)


def _declared_format(options: PrerecordedOptions) -> PcmFormat | None:
    if not options.language.lower().startswith("en"):
        raise RequestFailed(400, "the local engine only recognizes English (en)")
    if options.encoding is None:
        return None
    if options.sample_rate is None:
        raise BadOptions("sample_rate is required with encoding (raw audio)")
    return PcmFormat(options.encoding, options.sample_rate, options.channels)


async def _json_url(request: web.Request) -> str:
    try:
        body = await request.json()
    except ValueError:
        raise RequestFailed(400, "the JSON body is not valid JSON") from None
    url = body.get("url") if isinstance(body, dict) else None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise RequestFailed(400, 'expected a JSON body {"url": "http(s)://..."}')
    return url


async def _fetch(url: str) -> Chunks:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url) as response,
        ):
            if response.status >= 300:  # noqa: PLR2004
                msg = f"could not fetch {redact_url(url)}: HTTP {response.status}"
                raise RequestFailed(400, msg)
            async for chunk in response.content.iter_chunked(CHUNK):
                yield chunk
    except (aiohttp.ClientError, TimeoutError) as exc:
        msg = f"could not fetch {redact_url(url)}: {exc or type(exc).__name__}"
        raise RequestFailed(400, msg) from exc


def _split_channels(data: bytes, fmt: PcmFormat) -> list[bytes]:
    width = SAMPLE_WIDTHS[fmt.encoding]
    samples = memoryview(data).cast(_CAST[width])
    return [samples[index :: fmt.channels].tobytes() for index in range(fmt.channels)]


def _collect(finals: list[list[Hypothesis]], outputs: list[list[Any]]) -> None:
    for channel, items in enumerate(outputs):
        finals[channel].extend(o for o in items if isinstance(o, Hypothesis) and o.is_final)


def _error(status: int, message: str, request_id: str) -> web.Response:
    code = {
        400: "Bad Request",
        401: "INVALID_AUTH",
        403: "Forbidden",
        413: "Payload Too Large",
        503: "Service Unavailable",
    }
    body = {"err_code": code.get(status, "Error"), "err_msg": message, "request_id": request_id}
    return web.json_response(body, status=status, headers={"dg-error": message})
