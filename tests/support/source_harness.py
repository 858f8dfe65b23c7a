"""Run a config's sources outside the daemon and record what each ``stream()`` yields.

``python -m tests.support.source_harness CONFIG OUTDIR [LEVEL]`` writes ``OUTDIR/<source>.raw`` as
chunks arrive, logs like the daemon on stderr, and on SIGTERM closes every stream (which stops
capture threads and child processes) and exits 0. Tests run it in a subprocess so that each can
give PortAudio its own ALSA configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path

from listend.daemon.config.loader import load_config
from listend.daemon.plugin.manager import load_plugins
from listend.daemon.plugin.source import PluginContext, Source
from listend.daemon.service.logs import setup_logging
from tests.support.paths import ROOT
from tests.support.waiting import wait_until

log = logging.getLogger("harness")


async def pump(source: Source, out: Path) -> None:
    with out.open("wb") as sink:
        async with aclosing(source.stream()) as chunks:
            async for chunk in chunks:
                sink.write(chunk)
                sink.flush()
    log.info("source %s ended", source.name)


async def main(config_path: Path, outdir: Path) -> int:
    host = load_plugins()
    config = load_config(config_path, host)
    context = PluginContext(device=config.device, state_dir=config.state_dir)
    sources = []
    for name, cfg in config.sources.items():
        cls = host.sources.get(cfg.type)
        assert cls is not None
        sources.append(cls(name, cfg, context))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    tasks = [
        asyncio.create_task(pump(s, outdir / f"{s.name}.raw"), name=f"listend[source:{s.name}]")
        for s in sources
    ]
    waiter = asyncio.create_task(stop.wait())
    everything = asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.wait([everything, waiter], return_when=asyncio.FIRST_COMPLETED)
    if stop.is_set():
        log.info("stopping")
        for task in tasks:
            task.cancel()
    results = await everything
    waiter.cancel()
    failed = [
        r
        for r in results
        if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
    ]
    for error in failed:
        log.error("a source failed", exc_info=error)
    log.info("done")
    return 1 if failed else 0


class HarnessProcess:
    """The harness in a subprocess (its own ALSA config via HOME), with its log collected."""

    def __init__(self, config: Path, outdir: Path, env: dict[str, str], level: str = "info"):
        self.outdir = outdir
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.source_harness", str(config), str(outdir), level],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    @property
    def log(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    @property
    def log_before_stop(self) -> str:
        """The log up to SIGTERM (the test's own teardown makes FIFO reads spin)."""
        text = self.log
        return text.split("harness: stopping", 1)[0]

    def wait_for_log(self, pattern: str, timeout: float = 60, count: int = 1) -> str:
        """Block until ``count`` log lines match ``pattern`` (a regex); return the last one."""

        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matches = [line for line in self.lines if regex.search(line)]
                if len(matches) >= count:
                    return matches[-1]
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    msg = f"no log line matching {pattern!r} (x{count}); log:\n" + "\n".join(
                        self.lines
                    )
                    raise AssertionError(msg)
                self._changed.wait(min(left, 0.5))

    def output(self, source: str) -> bytes:
        path = self.outdir / f"{source}.raw"
        return path.read_bytes() if path.exists() else b""

    def wait_for_output(self, source: str, predicate, timeout: float = 60) -> bytes:
        def satisfied() -> bool:
            if predicate(self.output(source)):
                return True
            if self.proc.poll() is not None:
                raise AssertionError(f"the harness exited ({self.proc.returncode})")
            return False

        try:
            wait_until(satisfied, timeout, f"output of {source} to satisfy the check")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc} ({len(self.output(source))} bytes); log:\n{self.log}"
            ) from None
        return self.output(source)

    def stop(self, *, then: Callable[[], object] = lambda: None, timeout: float = 30) -> int:
        """SIGTERM, then ``then()`` (e.g. close the FIFOs a capture read may block on), then
        wait for a clean exit; return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(AssertionError):
                self.wait_for_log(r"harness: stopping$", timeout=10)
        then()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            msg = f"the harness did not exit {timeout} s after SIGTERM; log:\n{self.log}"
            raise AssertionError(msg) from None
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self._reader.join(timeout=10)
            if self.proc.stderr is not None:
                self.proc.stderr.close()


if __name__ == "__main__":
    setup_logging(sys.argv[3] if len(sys.argv) > 3 else "info")
    sys.exit(asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]))))
