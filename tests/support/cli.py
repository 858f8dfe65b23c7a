"""The ``listend`` command as tests run it: one-shot, or a daemon child with its log in a file."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.support.paths import ROOT
from tests.support.waiting import wait_until


def listend_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "listend", *args]


def run_listend(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return run_python(["-m", "listend", *args], env=env, cwd=cwd, timeout=timeout)


def run_python(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    timeout: float = 60,
    limits: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """This interpreter with ``argv``; ``limits`` runs in the child first (e.g. setrlimit)."""
    return subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        preexec_fn=limits,
        check=False,
    )


class DaemonProcess:
    """``listend run CONFIG`` as a child process, its log in a file the test can wait on."""

    def __init__(self, config: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self.out_path = log_path.with_suffix(".out")
        self._log = log_path.open("w")
        self._out = self.out_path.open("w")
        self.proc = subprocess.Popen(
            [*listend_cmd("--log-level", "debug", "run", str(config))],
            stdout=self._out,
            stderr=self._log,
            cwd=ROOT,
            env=env,
            text=True,
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def output(self) -> str:
        return self.out_path.read_text()

    def wait_log(self, text: str, timeout: float = 20.0) -> None:
        def seen() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited ({self.proc.returncode}):\n{self.log()}")
            return text in self.log()

        wait_until(seen, timeout, f"{text!r} in the daemon log")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._close()

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (drain), then the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 30.0) -> int:
        """The exit code once the daemon exits (killed after ``timeout`` seconds)."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise
        finally:
            self._close()
        return self.proc.returncode

    def _close(self) -> None:
        self._log.close()
        self._out.close()
