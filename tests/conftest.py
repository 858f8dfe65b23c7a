"""Shared fixtures. Service fixtures (mosquitto, Deepgram-protocol server) start real processes
or servers on free loopback ports; nothing here mocks what listend ships against."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from listend.dgproto.recognizer import StreamParams
from listend.engine.evaluation import synthesize
from listend.engine.server import LocalEngine
from listend.engine.workers import PocketsphinxRecognizer, WorkerPool

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def listend_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "listend", *args]


def run_listend(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        listend_cmd(*args),
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def write_config(tmp_path: Path):
    def write(text: str, name: str = "listend.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def mosquitto_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real mosquitto broker on a free loopback port for the whole test session (per worker)."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        pytest.fail("mosquitto is not installed (scripts/setup-system.sh installs it)")
    port = free_port()
    conf = tmp_path_factory.mktemp("mosquitto") / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture(scope="session")
def echo_plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The third-party fixture plugin, pip-installed into its own target dir (not our venv)."""
    target = tmp_path_factory.mktemp("echo-plugin")
    # Build from a copy: setuptools writes build/ next to the sources, and xdist workers race.
    source = tmp_path_factory.mktemp("echo-src") / "listend-echo"
    shutil.copytree(FIXTURES / "listend-echo", source)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PIP_NO_INDEX": "1"},
    )
    return target


# -- local engine (pocketsphinx) -------------------------------------------------------------


class LoopThread:
    """An event loop in a thread, so one warm engine can serve every test of a module."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro, timeout: float = 120.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def engine_loop() -> Iterator[LoopThread]:
    loop = LoopThread()
    try:
        yield loop
    finally:
        loop.close()


async def warm_up(pool: WorkerPool, speech) -> None:
    """Let the decoders' cepstral mean adapt to (generated) speech, as one utterance would."""
    for _ in range(pool.size):
        recognizer = PocketsphinxRecognizer(pool, StreamParams())
        await recognizer.feed(speech("this sentence warms up the decoder") + b"\0\0" * 16000)
        await recognizer.close()


@pytest.fixture(scope="module")
def worker_pool(engine_loop: LoopThread, speech) -> Iterator[WorkerPool]:
    """One warm pocketsphinx worker process for the module (decoders cost ~0.4 s and 90 MB)."""
    pool = WorkerPool(1)
    engine_loop.run(pool.start())
    engine_loop.run(warm_up(pool, speech))
    try:
        yield pool
    finally:
        engine_loop.run(pool.close())


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory):
    """``speech(text, rate=16000) -> bytes``: espeak-ng speech as raw mono 16-bit PCM (cached)."""
    folder = tmp_path_factory.mktemp("speech")
    cache: dict[tuple[str, int], bytes] = {}

    def make(text: str, rate: int = 16000) -> bytes:
        if (text, rate) not in cache:
            path = synthesize(text, folder / f"{len(cache)}.wav", rate=rate)
            with wave.open(str(path)) as wav:
                cache[text, rate] = wav.readframes(wav.getnframes())
        return cache[text, rate]

    return make


@pytest.fixture(scope="module")
def local_engine(engine_loop: LoopThread, speech) -> Iterator[LocalEngine]:
    """The whole local engine (protocol server + REST) on loopback, one warm worker."""
    engine = LocalEngine(workers=1, idle_timeout=3.0)
    engine_loop.run(engine.start())
    engine_loop.run(warm_up(engine.pool, speech))
    try:
        yield engine
    finally:
        engine_loop.run(engine.stop())


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory):
    """Debian's headless Chromium, one per test worker, driven over the DevTools protocol."""
    from tests.browser import Chromium  # noqa: PLC0415 - only the page tests need it

    browser = Chromium(tmp_path_factory.mktemp("chromium") / "profile")
    browser.start()
    yield browser
    browser.stop()
