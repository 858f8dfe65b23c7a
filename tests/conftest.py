"""Shared fixtures, and only fixtures: helpers live in tests/support/ (test_support_layout.py
checks that nothing imports from here). Service fixtures start real processes or servers on free
loopback ports; nothing here mocks what listend ships against."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from listend.engine.server import LocalEngine
from listend.engine.workers import WorkerPool
from tests.support.audio import read_pcm
from tests.support.engine import LoopThread, warm_up
from tests.support.evaluation import synthesize
from tests.support.http import Receiver
from tests.support.mqtt import Mosquitto
from tests.support.net import free_port
from tests.support.paths import FIXTURES


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
    broker = Mosquitto(free_port(), tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker.port
    finally:
        broker.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server on loopback recording every request (scripted statuses, then 200)."""
    with Receiver() as server:
        yield server


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


@pytest.fixture(scope="module")
def engine_loop() -> Iterator[LoopThread]:
    loop = LoopThread()
    try:
        yield loop
    finally:
        loop.close()


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
            cache[text, rate] = read_pcm(path)
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
    from tests.support.browser import Chromium  # noqa: PLC0415 - only the page tests need it

    browser = Chromium(tmp_path_factory.mktemp("chromium") / "profile")
    browser.start()
    yield browser
    browser.stop()
