"""The command source with real child processes: restart with backoff, clean stop, no leftovers."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from contextlib import aclosing
from pathlib import Path

import pytest

from listend.daemon.errors import ConfigError
from listend.daemon.plugin.source import PluginContext
from listend.plugins.command_source import CommandConfig, CommandSource
from tests.support.cli import run_listend
from tests.support.paths import ROOT

CONTEXT = PluginContext(device="t", state_dir=Path("/nonexistent"))


def make_source(command: list[str], **options: object) -> CommandSource:
    config = CommandConfig.model_validate(
        {"type": "command", "command": command, "max_retry_delay": 0.2, **options}
    )
    return CommandSource("cmd", config, CONTEXT)


async def collect(source: CommandSource, enough) -> bytes:
    """Read the stream until ``enough(data)``, then close it (as a stop or reload does)."""
    data = b""
    async with asyncio.timeout(60), aclosing(source.stream()) as chunks:
        async for chunk in chunks:
            assert len(chunk) % source.audio_format.bytes_per_frame == 0
            data += chunk
            if enough(data):
                break
    return data


def gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for its (new) parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in {"Z", "X"}


def wait_gone(pids: list[int], timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := [p for p in pids if not gone(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def test_a_command_that_exits_is_restarted_and_its_stderr_logged(caplog):
    caplog.set_level(logging.DEBUG)
    script = r"printf 'ABCD'; printf 'progress 1\rprogress 2\nbad thing\n' >&2; exit 3"
    source = make_source(["sh", "-c", script])
    data = asyncio.run(collect(source, lambda d: d.count(b"ABCD") >= 3))
    assert data.startswith(b"ABCDABCDABCD")
    messages = [r.getMessage() for r in caplog.records]
    assert "source cmd: [sh] bad thing" in messages
    assert "source cmd: [sh] progress 2" in messages, "\\r-separated progress lines are split"
    outage = [m for m in messages if "exited with status 3" in m]
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1, "an exit is logged once per outage, not per restart"
    assert outage
    assert source.stats.outages >= 1
    assert any("resumed after" in m for m in messages)


def test_partial_frames_are_joined_across_reads():
    script = r"printf '\001'; sleep 0.2; printf '\002\003'; sleep 0.2; printf '\004'; sleep 5"
    source = make_source(["sh", "-c", script])
    assert asyncio.run(collect(source, lambda d: len(d) >= 4)) == b"\x01\x02\x03\x04"


def test_restart_on_failure_ends_the_source_after_a_clean_exit():
    source = make_source(["sh", "-c", "printf 'WXYZ'"], restart="on-failure")

    async def run() -> bytes:
        async with asyncio.timeout(30):
            return b"".join([chunk async for chunk in source.stream()])

    assert asyncio.run(run()) == b"WXYZ"


@pytest.mark.parametrize("ignore_term", ["leader", "child"])
def test_stop_leaves_no_process_behind(tmp_path, caplog, ignore_term):
    """TERM to the group, KILL after the grace period: also for what ignores TERM."""
    pids = tmp_path / "pids"
    child_trap = "trap '' TERM; " if ignore_term == "child" else ""
    leader_trap = "trap '' TERM" if ignore_term == "leader" else "trap 'exit 0' TERM"
    script = (
        f'{leader_trap}; sh -c "{child_trap}echo \\$\\$ >> {pids}; exec sleep 600" & '
        f"echo $$ >> {pids}; while :; do printf 'ABCD'; sleep 0.05; done"
    )
    source = make_source(["sh", "-c", script], stop_grace=0.5)

    def started(data: bytes) -> bool:
        return len(data) >= 8 and pids.exists() and len(pids.read_text().split()) == 2

    asyncio.run(collect(source, started))
    recorded = [int(p) for p in pids.read_text().split()]
    assert wait_gone(recorded) == [], f"left running: {recorded}"
    if ignore_term == "leader":
        assert "did not exit 0.5 s after SIGTERM; killing it" in caplog.text


def test_a_stalled_command_is_restarted(tmp_path, caplog):
    runs = tmp_path / "runs"
    script = f"echo run >> {runs}; printf 'ABCD'; exec sleep 600"
    source = make_source(["sh", "-c", script], stall_timeout=0.3, stop_grace=0.5)
    asyncio.run(collect(source, lambda d: d.count(b"ABCD") >= 2))
    assert runs.read_text().count("run") >= 2
    assert "sh wrote no audio for 0.3 s" in caplog.text


def test_unknown_program_is_a_config_error():
    with pytest.raises(ConfigError, match=r"source cmd: command 'no-such-recorder' is not on PATH"):
        make_source(["no-such-recorder", "-x"])
    with pytest.raises(ConfigError, match=r"'/nonexistent/rec' is not an executable file"):
        make_source(["/nonexistent/rec"])


def test_unknown_program_stops_the_daemon_with_a_clear_error(write_config, tmp_path):
    path = write_config(
        f"device: t\nstate_dir: {tmp_path}/state\n"
        "sources:\n  cam:\n    type: command\n    command: [no-such-recorder, -q]\n"
        "sinks:\n  out:\n    type: stdout\n"
    )
    result = run_listend("run", str(path))
    assert result.returncode == 78, result.stderr
    # reported before anything starts, at the source's line, like `validate` does
    assert f"{path}:4:3: sources.cam: command 'no-such-recorder' is not on PATH" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("example", ["arecord.yaml", "ffmpeg-rtsp.yaml"])
def test_config_examples_validate(example):
    result = run_listend("validate", str(ROOT / "config" / "examples" / example))
    assert result.returncode == 0, result.stderr
    assert re.search(r": ok \(\d+ sources", result.stdout)


def test_audio_format_is_what_the_config_declares():
    source = make_source(["true"], sample_rate=48000, channels=2)
    assert (source.audio_format.sample_rate, source.audio_format.channels) == (48000, 2)
    assert source.audio_format.encoding == "linear16"


def test_the_child_environment_holds_no_secret_of_the_daemon(monkeypatch, tmp_path):
    """A real child prints its environment (as its "audio"): the allowlist and the source's
    `env`, never the daemon's key, `$env:` secrets or systemd's credentials directory."""
    monkeypatch.setenv("DEEPGRAM_API_KEY", "dg-secret-key")
    monkeypatch.setenv("MQTT_PASSWORD", "mqtt-secret")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("LC_TIME", "C.UTF-8")
    source = make_source(["sh", "-c", "env; printf END!END!; sleep 30"], env={"ROOM": "hall"})
    data = asyncio.run(collect(source, lambda d: b"END!" in d)).decode()
    names = {line.split("=", 1)[0] for line in data.split("END!")[0].splitlines()}
    assert "ROOM=hall" in data.splitlines()
    assert {"PATH", "LC_TIME"} <= names
    assert not names & {"DEEPGRAM_API_KEY", "MQTT_PASSWORD", "CREDENTIALS_DIRECTORY"}
    assert "secret" not in data
