"""The local engine (pocketsphinx) fixtures' machinery: one warm engine per test module."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from listend.dgproto.recognizer import StreamParams
from listend.engine.workers import PocketsphinxRecognizer, WorkerPool

T = TypeVar("T")


class LoopThread:
    """An event loop in a thread, so one warm engine can serve every test of a module."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


async def warm_up(pool: WorkerPool, speech: Callable[[str], bytes]) -> None:
    """Let the decoders' cepstral mean adapt to (generated) speech, as one utterance would."""
    for _ in range(pool.size):
        recognizer = PocketsphinxRecognizer(pool, StreamParams())
        await recognizer.feed(speech("this sentence warms up the decoder") + b"\0\0" * 16000)
        await recognizer.close()
