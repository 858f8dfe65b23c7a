"""The daemon's side of the decoding workers: one process per core, streams pinned to one.

Each worker is a ``python -m listend.engine.worker`` child fed over a pipe (see that module), so
the event loop only awaits answers. A worker that dies is replaced; the streams it held fail
(their clients reconnect, as they would with Deepgram).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import os
import pickle
import sys
from typing import Any

from listend.daemon.child_env import child_environment
from listend.dgproto.recognizer import (
    Recognizer,
    RecognizerInfo,
    RecognizerOutput,
    StreamParams,
)
from listend.engine.formats import UnsupportedAudio, check_audio_format
from listend.engine.pipe import HEADER

log = logging.getLogger(__name__)

_stream_ids = itertools.count(1)
_STOP_TIMEOUT = 10.0


def _pocketsphinx_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("pocketsphinx")
    except PackageNotFoundError:
        return "unknown"


ENGINE_INFO = RecognizerInfo(
    name="pocketsphinx-en-us",
    version=_pocketsphinx_version(),
    arch="pocketsphinx",
    kind="local",
)


class EngineError(RuntimeError):
    """A decoding worker failed or is gone; the stream that used it is lost."""


class Worker:
    """One worker process; calls are answered in the order they were sent."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.streams = 0
        self.pid: int | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._reader: asyncio.Task[None] | None = None

    async def start(self, max_idle: int, prewarm: int) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "listend.engine.worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=child_environment(),
        )
        self._process = process
        if process.stdout is None:
            raise EngineError(f"local engine worker {self.index} started without its stdout")
        self._reader = asyncio.create_task(
            self._read_answers(process, process.stdout),
            name=f"listend[engine-worker:{self.index}]",
        )
        self.pid = await self.call("configure", max_idle, prewarm, logging.getLogger().level)

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def call(self, name: str, *args: Any) -> Any:
        process = self._process
        if process is None or process.stdin is None or process.stdin.is_closing():
            raise EngineError(f"local engine worker {self.index} is not running")
        data = pickle.dumps((name, args), protocol=pickle.HIGHEST_PROTOCOL)
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append(answer)
        process.stdin.write(HEADER.pack(len(data)) + data)
        await process.stdin.drain()
        ok, value = await answer
        if not ok:
            raise value
        return value

    async def _read_answers(
        self, process: asyncio.subprocess.Process, stdout: asyncio.StreamReader
    ) -> None:
        try:
            while True:
                (size,) = HEADER.unpack(await stdout.readexactly(HEADER.size))
                answer = pickle.loads(await stdout.readexactly(size))  # noqa: S301
                waiter = self._waiting.popleft()
                if not waiter.done():
                    waiter.set_result(answer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        code = await process.wait()
        error = EngineError(f"local engine worker {self.index} exited with status {code}")
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    async def stop(self) -> None:
        """Close its stdin (it exits at EOF); kill it if it does not."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), _STOP_TIMEOUT)
        except TimeoutError:
            log.warning("local engine worker %d did not exit; killing it", self.index)
            process.kill()
            await process.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


class WorkerPool:
    """``workers`` processes (default: one per core), each keeping ``max_idle`` warm decoders."""

    def __init__(self, workers: int | None = None, *, max_idle: int = 2, prewarm: int = 1) -> None:
        self.size = max(1, workers or os.cpu_count() or 1)
        self.max_idle = max_idle
        self.prewarm = prewarm
        self.workers: list[Worker] = []
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Start the processes and wait until each has a warm decoder."""
        self.workers = [Worker(index) for index in range(self.size)]
        try:
            await asyncio.gather(*(w.start(self.max_idle, self.prewarm) for w in self.workers))
        except BaseException:
            await self.close()
            raise
        log.debug("local engine workers ready: pids %s", [w.pid for w in self.workers])

    async def close(self) -> None:
        workers, self.workers = self.workers, []
        await asyncio.gather(*(w.stop() for w in workers))

    async def pick(self) -> Worker:
        """The least busy worker, restarting it first if it died."""
        async with self._lock:
            if not self.workers:
                raise EngineError("the local engine is not running")
            chosen = min(self.workers, key=lambda w: (not w.alive, w.streams))
            if not chosen.alive:
                log.warning("local engine worker %d is gone; starting a new one", chosen.index)
                await chosen.stop()
                replacement = Worker(chosen.index)
                await replacement.start(self.max_idle, self.prewarm)
                self.workers[self.workers.index(chosen)] = replacement
                chosen = replacement
            chosen.streams += 1
            return chosen

    async def stats(self) -> list[dict[str, int]]:
        return list(await asyncio.gather(*(w.call("stats") for w in self.workers if w.alive)))


class PocketsphinxRecognizer(Recognizer):
    """One connection's recognizer; its decoder lives in the worker it is pinned to.

    Made synchronously by the protocol server's factory (parameters are checked here, so a bad
    request is a 400); the worker stream is opened on first use.
    """

    info = ENGINE_INFO

    def __init__(self, pool: WorkerPool, params: StreamParams) -> None:
        check_audio_format(params.encoding, params.sample_rate, params.channels)
        if not params.language.lower().startswith("en"):
            raise UnsupportedAudio(
                f"language {params.language!r}: the local engine only recognizes English (en)"
            )
        self._pool = pool
        self._params = params
        self._id = next(_stream_ids)
        self._worker: Worker | None = None
        self._opening: asyncio.Task[Worker] | None = None
        self._closed = False
        self.warnings: list[str] = []

    async def _stream(self) -> Worker:
        if self._closed:
            raise EngineError("stream already closed")
        if self._worker is None:
            if self._opening is None:
                self._opening = asyncio.create_task(self._open())
            self._worker = await asyncio.shield(self._opening)
        return self._worker

    async def _open(self) -> Worker:
        chosen = await self._pool.pick()
        try:
            self.warnings = await chosen.call("open_stream", self._id, self._params)
        except BaseException:
            chosen.streams -= 1
            raise
        return chosen

    async def open(self) -> None:
        """Attach a decoder now rather than on the first audio."""
        await self._stream()

    async def feed(self, audio: bytes) -> list[RecognizerOutput]:
        worker = await self._stream()
        outputs: list[RecognizerOutput] = await worker.call("feed", self._id, audio)
        return outputs

    async def finalize(self) -> list[RecognizerOutput]:
        worker = await self._stream()
        outputs: list[RecognizerOutput] = await worker.call("finalize", self._id)
        return outputs

    async def close(self) -> list[RecognizerOutput]:
        worker = await self._stream()
        try:
            outputs: list[RecognizerOutput] = await worker.call("close", self._id)
        finally:
            self._release()
        return outputs

    async def aclose(self) -> None:
        if self._closed:
            return
        if self._worker is None and self._opening is not None:
            with contextlib.suppress(Exception):
                await self._opening
                self._worker = self._opening.result()
        worker = self._worker
        self._release()
        if worker is not None and worker.alive:
            with contextlib.suppress(EngineError):
                await worker.call("discard", self._id)

    def _release(self) -> None:
        if not self._closed:
            self._closed = True
            if self._worker is not None:
                self._worker.streams -= 1
