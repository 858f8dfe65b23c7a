"""Shared fixtures. Service fixtures (mosquitto, Deepgram-protocol server) start real processes
or servers on free loopback ports; nothing here mocks what listend ships against."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory):
    """Debian's headless Chromium, one per test worker, driven over the DevTools protocol."""
    from tests.browser import Chromium  # noqa: PLC0415 - only the page tests need it

    browser = Chromium(tmp_path_factory.mktemp("chromium") / "profile")
    browser.start()
    yield browser
    browser.stop()
