"""A Deepgram streaming server on loopback for tests: scripted words, faults, records."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Coroutine, Iterable, Iterator
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Self, TypeVar

from listend.dgproto.server import (
    Credentials,
    DeepgramProtocolServer,
    RecognizerFactory,
    Refusal,
    serve,
)
from listend.testing.faults import ABRUPT, FaultPlan
from listend.testing.records import ConnectionRecord, Recorder
from listend.testing.scripted import ScriptedRecognizer

T = TypeVar("T")
DEFAULT_API_KEY = "listend-test-key"


class DeepgramTestServer:
    """``async with DeepgramTestServer() as dg:`` then point listend (or the SDK) at ``dg.url``.

    Every connection is recorded in :attr:`connections` (bytes, control messages in order,
    messages sent, close code; the latest 1000 connections, bounded per connection, see
    :mod:`listend.testing.records`); :attr:`faults` plans refusals, drops and stalls.
    """

    def __init__(
        self,
        *,
        api_keys: Iterable[str] = (DEFAULT_API_KEY,),
        access_tokens: Iterable[str] = (),
        idle_timeout: float = 10.0,
        recognizer_factory: RecognizerFactory = ScriptedRecognizer,
        models: Iterable[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_keys = list(api_keys)
        self.access_tokens = list(access_tokens)
        self.recorder = Recorder()
        self.protocol = DeepgramProtocolServer(
            recognizer_factory,
            credentials=Credentials(self.api_keys, self.access_tokens),
            idle_timeout=idle_timeout,
            models=None if models is None else list(models),
            hooks=self.recorder,
        )
        self.host = host
        self.port = port
        self._stack: AsyncExitStack | None = None

    @property
    def api_key(self) -> str:
        return self.api_keys[0]

    @property
    def url(self) -> str:
        """The base URL for ``deepgram.url`` (the SDK's ``base``; WebSocket is ws://)."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def faults(self) -> FaultPlan:
        return self.recorder.faults

    @property
    def connections(self) -> deque[ConnectionRecord]:
        return self.recorder.connections

    @property
    def refusals(self) -> deque[Refusal]:
        return self.recorder.refusals

    @property
    def idle_timeout(self) -> float:
        return self.protocol.idle_timeout

    @idle_timeout.setter
    def idle_timeout(self, value: float) -> None:
        self.protocol.idle_timeout = value

    def received_audio(self) -> bytes:
        """All audio bytes of all connections, in connection order (replays included)."""
        return b"".join(bytes(c.audio) for c in self.connections)

    async def drop_all(self, code: int = 1011, reason: str = "NET-0000") -> None:
        """Close every live connection now (1006: abort without a close frame)."""
        if code == ABRUPT:
            self.protocol.abort_all()
        else:
            await self.protocol.close_all(code, reason)

    async def wait_for_connections(self, count: int) -> None:
        """Wait until ``count`` connections have been accepted in total."""
        await self.recorder.wait_for_connections(count)

    async def start(self) -> Self:
        stack = AsyncExitStack()
        self.host, self.port = await stack.enter_async_context(
            serve(self.protocol.app, self.host, self.port)
        )
        self._stack = stack
        return self

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class ThreadedDeepgramTestServer:
    """The same server on its own event loop thread, for synchronous tests::

    with ThreadedDeepgramTestServer() as dg:
        subprocess.run([... "listend", "run", config_pointing_at(dg.url)])
        assert dg.connections[0].control_types[-1] == "CloseStream"
    """

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="deepgram-test-server", daemon=True
        )
        self.server: DeepgramTestServer | None = None

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run a coroutine on the server's loop (e.g. ``drop_all``) and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __enter__(self) -> DeepgramTestServer:
        self._thread.start()

        async def start() -> DeepgramTestServer:
            return await DeepgramTestServer(**self._kwargs).start()

        self.server = self.call(start())
        return self.server

    def __exit__(self, *exc_info: object) -> None:
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.call(self.server.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@contextlib.contextmanager
def running_server(**kwargs: Any) -> Iterator[DeepgramTestServer]:
    """Shorthand for :class:`ThreadedDeepgramTestServer`."""
    with ThreadedDeepgramTestServer(**kwargs) as server:
        yield server
