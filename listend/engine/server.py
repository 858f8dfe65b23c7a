"""The local engine as a server: Deepgram's protocol on loopback, backed by pocketsphinx alone
or by Whisper (finals) with pocketsphinx (boundaries and interims).

``GET /v1/listen`` (WebSocket streaming) is the shared protocol server with a recognizer per
connection; ``POST /v1/listen`` is the prerecorded API. The daemon and
``listend transcribe`` reach it through the Deepgram SDK with a custom base URL, exactly as
they reach Deepgram, so nothing downstream knows the difference.

A loopback port is open to every local user, so the engine requires a random token made per
process (``Authorization: Token <token>``, which only its own process knows), and it fetches
no URL (``{"url": ...}``) and posts to no callback unless told to: otherwise it would be a
request forgery tool for anyone on the device.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from types import TracebackType
from typing import TYPE_CHECKING, Self

from listend.dgproto.recognizer import Recognizer, StreamParams
from listend.dgproto.records import Credentials
from listend.dgproto.server import DeepgramProtocolServer, serve
from listend.engine.rest import PrerecordedRoute
from listend.engine.workers import ENGINE_INFO, PocketsphinxRecognizer, WorkerPool

if TYPE_CHECKING:
    from listend.engine.whisper import FinalDecoder
    from listend.engine.whisper_model import WhisperSettings

log = logging.getLogger(__name__)


class LocalEngine:
    """Start with ``async with LocalEngine() as engine:``; ``engine.url`` is its base URL.

    ``whisper`` (settings, needs the ``whisper`` extra) makes it a Whisper engine, ``wyoming``
    (``tcp://host:port``) one whose finals come from that Wyoming server; without either,
    pocketsphinx alone.
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        idle_timeout: float = 10.0,
        allow_url: bool = False,
        allow_callback: bool = False,
        whisper: WhisperSettings | None = None,
        wyoming: str | None = None,
    ) -> None:
        self.pool = WorkerPool(workers)
        self.finals: FinalDecoder | None = None
        if wyoming is not None:
            from listend.engine.wyoming_client import WyomingDecoder  # noqa: PLC0415

            self.finals = WyomingDecoder(wyoming)
        elif whisper is not None:
            from listend.engine.whisper_model import WhisperModel  # noqa: PLC0415 - the extra

            self.finals = WhisperModel(whisper)
        self.token = secrets.token_urlsafe(32)  # never logged: only this process knows it
        credentials = Credentials(api_keys=[self.token])
        self.protocol = DeepgramProtocolServer(
            self._recognizer, credentials=credentials, idle_timeout=idle_timeout
        )
        self.rest = PrerecordedRoute(
            self._prerecorded, credentials, allow_url=allow_url, allow_callback=allow_callback
        )
        self.rest.add_to(self.protocol.app)
        self._host = host
        self._port = port
        self._stack: contextlib.AsyncExitStack | None = None
        self.address: tuple[str, int] | None = None

    def _recognizer(self, params: StreamParams, *, pipelined: bool = False) -> Recognizer:
        if self.finals is not None:
            from listend.engine.whisper import WhisperRecognizer  # noqa: PLC0415

            return WhisperRecognizer(self.pool, self.finals, params, pipelined=pipelined)
        return PocketsphinxRecognizer(self.pool, params)  # UnsupportedParams: a 400

    def _prerecorded(self, params: StreamParams) -> Recognizer:
        return self._recognizer(params, pipelined=True)

    @property
    def description(self) -> str:
        """Which engine and model, for the log and ``listend plugins``."""
        if self.finals is not None:
            return self.finals.description
        return f"pocketsphinx {ENGINE_INFO.version} (US English model)"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (the SDK derives ``ws://`` for streaming from it)."""
        if self.address is None:
            raise RuntimeError("the local engine is not started")
        host, port = self.address
        return f"http://{host}:{port}"

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value the engine requires."""
        return f"Token {self.token}"

    async def start(self) -> str:
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        try:
            await self.pool.start()
            stack.push_async_callback(self.pool.close)
            if self.finals is not None:
                await self.finals.start()
                stack.callback(self.finals.close)
            self.address = await stack.enter_async_context(
                serve(self.protocol.app, self._host, self._port)
            )
            stack.push_async_callback(self.rest.close)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        log.debug("local engine %s (%d workers) on %s", self.description, self.pool.size, self.url)
        return self.url

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
