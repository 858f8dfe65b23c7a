"""The ``command`` source: a program whose stdout is raw PCM (arecord, ffmpeg, sox, ...).

The command runs without a shell in a process group of its own, so stopping it reaches
everything it started: SIGTERM to the group, SIGKILL after ``stop_grace`` seconds, and SIGKILL
to any stragglers once the command itself has exited. Its stderr goes to the log line by line.
When it exits (or writes nothing for ``stall_timeout``) the shared restart loop starts it
again with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
from asyncio.subprocess import Process, SubprocessStreamProtocol
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from listend.api import (
    AudioFormat,
    Backoff,
    ConfigError,
    PluginContext,
    RestartingSourceConfig,
    RestartStats,
    Source,
    SourceInterrupted,
    child_environment,
    restart_problem,
    restarting,
)

log = logging.getLogger(__name__)

MAX_STDERR_LINE = 2000
_LINE_BREAK = re.compile(rb"[\r\n]")  # ffmpeg redraws its progress line with \r


class CommandConfig(RestartingSourceConfig):
    command: list[str] = Field(
        min_length=1,
        description="program and arguments, no shell; stdout must be raw 16-bit little-endian "
        "PCM at sample_rate and channels",
    )
    sample_rate: int = Field(default=16000, ge=8000, le=192000, description="Hz")
    channels: int = Field(default=1, ge=1, le=32)
    env: dict[str, str] = Field(default_factory=dict, description="extra environment variables")
    restart: Literal["always", "on-failure", "never"] = Field(
        default="always",
        description="when to start the command again after it exits (on-failure: not after "
        "exit status 0); otherwise the source ends",
    )
    stop_grace: float = Field(
        default=5.0, gt=0, le=300, description="seconds between SIGTERM and SIGKILL on stop"
    )
    stall_timeout: float | None = Field(
        default=15.0, gt=0, le=3600, description="restart the command after this long without audio"
    )
    stderr_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="log level of the command's stderr lines"
    )
    chunk_ms: int = Field(default=100, ge=10, le=1000, description="largest chunk handed on")

    @field_validator("command", mode="before")
    @classmethod
    def _numbers_as_text(cls, value: Any) -> Any:
        """``[arecord, -r, 16000]`` means the argument "16000"; YAML reads it as a number."""
        if isinstance(value, list):
            return [
                str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
                for v in value
            ]
        return value


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _describe_exit(program: str, returncode: int) -> str:
    if returncode < 0:
        return f"{program} was killed by {signal.Signals(-returncode).name}"
    return f"{program} exited with status {returncode}"


class CommandSource(Source):
    type_name = "command"
    config_model = CommandConfig
    config: CommandConfig

    def __init__(self, name: str, config: Any, context: PluginContext) -> None:
        super().__init__(name, config, context)
        self.stats = RestartStats()
        self._label = f"source {name}"
        self._program = Path(self.config.command[0]).name
        self._backoff = Backoff(cap=self.config.max_retry_delay)
        self._format = AudioFormat(self.config.sample_rate, self.config.channels)
        self._check_program()

    def _check_program(self) -> None:
        program = self.config.command[0]
        path = self.config.env.get("PATH", os.environ.get("PATH"))
        if shutil.which(program, path=path) is None:
            where = "is not an executable file" if os.sep in program else "is not on PATH"
            raise ConfigError(f"source {self.name}: command {program!r} {where}")

    @property
    def audio_format(self) -> AudioFormat:
        return self._format

    def stream(self) -> AsyncIterator[bytes]:
        return restarting(
            self._run_once, label=self._label, backoff=self._backoff, stats=self.stats
        )

    def problem(self) -> str | None:
        return restart_problem(self.stats)

    async def _run_once(self) -> AsyncGenerator[bytes, None]:
        cfg = self.config
        loop = asyncio.get_running_loop()
        try:
            # What create_subprocess_exec does, keeping the transport so that it can be closed
            # even when the stream is abandoned before the pipes reach EOF.
            transport, protocol = await loop.subprocess_exec(
                lambda: SubprocessStreamProtocol(limit=2**16, loop=loop),
                *cfg.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group: stop reaches its children
                env=child_environment(cfg.env),  # never the daemon's secrets
            )
        except OSError as exc:
            raise SourceInterrupted(f"cannot start {self._program}: {exc}") from exc
        proc = Process(transport, protocol, loop)
        log.info("%s: started %s (pid %d)", self._label, self._program, proc.pid)
        if proc.stdout is None or proc.stderr is None:  # both are PIPEs: only a bug gets here
            transport.close()
            raise RuntimeError(f"{self._label}: {self._program} has no stdout/stderr pipe")
        stderr_task = asyncio.create_task(
            self._log_stderr(proc.stderr), name=f"listend[source:{self.name}].stderr"
        )
        try:
            async for chunk in self._read_audio(proc.stdout):
                yield chunk
            returncode = await self._wait_after_eof(proc)
        finally:
            try:
                await self._terminate(proc)
                await self._finish_stderr(stderr_task)
            finally:
                transport.close()
        reason = _describe_exit(self._program, returncode)
        if cfg.restart == "never" or (cfg.restart == "on-failure" and returncode == 0):
            level = logging.INFO if returncode == 0 else logging.WARNING
            log.log(
                level, "%s: %s; the source ends (restart: %s)", self._label, reason, cfg.restart
            )
            return
        raise SourceInterrupted(reason)

    async def _read_audio(self, stdout: asyncio.StreamReader) -> AsyncIterator[bytes]:
        """Frame-aligned chunks of what the command writes, until EOF; a stall ends it."""
        frame = self._format.bytes_per_frame
        size = max(frame, self._format.bytes_per_second * self.config.chunk_ms // 1000)
        pending = b""
        while True:
            try:
                async with asyncio.timeout(self.config.stall_timeout):
                    data = await stdout.read(size)
            except TimeoutError:
                msg = f"{self._program} wrote no audio for {self.config.stall_timeout:g} s"
                raise SourceInterrupted(msg) from None
            if not data:
                if pending:
                    log.debug("%s: dropped %d bytes of a partial frame", self._label, len(pending))
                return
            pending += data
            usable = len(pending) - len(pending) % frame
            if usable:
                chunk, pending = pending[:usable], pending[usable:]
                yield chunk

    async def _wait_after_eof(self, proc: asyncio.subprocess.Process) -> int:
        """stdout closed: the command normally exits now; give it the grace period."""
        try:
            async with asyncio.timeout(self.config.stop_grace):
                return await proc.wait()
        except TimeoutError:
            msg = f"{self._program} closed its output but kept running"
            raise SourceInterrupted(msg) from None

    async def _terminate(self, proc: asyncio.subprocess.Process) -> None:
        """TERM the group, KILL it after the grace period; always KILL stragglers; reap."""
        try:
            if proc.returncode is None:
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    async with asyncio.timeout(self.config.stop_grace):
                        await proc.wait()
                except TimeoutError:
                    log.warning(
                        "%s: %s did not exit %g s after SIGTERM; killing it",
                        self._label,
                        self._program,
                        self.config.stop_grace,
                    )
        finally:
            _signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def _log_stderr(self, stderr: asyncio.StreamReader) -> None:
        level = logging.getLevelNamesMapping()[self.config.stderr_level.upper()]
        pending = b""
        while data := await stderr.read(4096):
            *lines, pending = _LINE_BREAK.split(pending + data)
            if len(pending) > MAX_STDERR_LINE:
                lines.append(pending)
                pending = b""
            for line in lines:
                self._log_line(level, line)
        self._log_line(level, pending)

    def _log_line(self, level: int, line: bytes) -> None:
        text = line.decode(errors="replace").strip()
        if text:
            log.log(level, "%s: [%s] %s", self._label, self._program, text[:MAX_STDERR_LINE])

    async def _finish_stderr(self, task: asyncio.Task[None]) -> None:
        """The group is gone, so stderr is at EOF soon; don't wait on a leaked descriptor."""
        done, _ = await asyncio.wait([task], timeout=1.0)
        if not done:
            task.cancel()
            await asyncio.wait([task])
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error
