"""Logging: priority prefixes without timestamps under journald, timestamps elsewhere."""

from __future__ import annotations

import logging
import os
import re
import subprocess
from pathlib import Path

import pytest

from listend.daemon.service.logs import JournalFormatter
from listend.testing import ThreadedDeepgramTestServer
from tests.support.cli import listend_cmd
from tests.support.paths import ROOT, SAMPLE

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")
SECRET = "dg-secret-value-0123456789"

CONFIG = """\
device: logtest
state_dir: {state}
log:
  level: {level}
deepgram:
  api_key: $env:LOGTEST_KEY
  url: {url}
sources:
  hall:
    type: file
    path: {sample}
    realtime: false
sinks:
  out:
    type: stdout
    format: jsonl
"""


def record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("listend.test", level, __file__, 1, message, None, None)


def test_journal_formatter_prefixes_every_line() -> None:
    formatter = JournalFormatter("%(name)s: %(message)s")
    assert formatter.format(record(logging.WARNING, "disk full")) == "<4>listend.test: disk full"
    assert formatter.format(record(logging.ERROR, "bad\n  line 2")) == (
        "<3>listend.test: bad\n<3>  line 2"
    )
    assert formatter.format(record(logging.DEBUG, "x")).startswith("<7>")
    assert formatter.format(record(logging.INFO, "x")).startswith("<6>")
    assert formatter.format(record(logging.CRITICAL, "x")).startswith("<2>")


@pytest.fixture(scope="module")
def dg_url():
    """Deepgram's protocol on loopback, answering the test's key (the one we check leaks of)."""
    with ThreadedDeepgramTestServer(api_keys=[SECRET]) as server:
        yield server.url


def write_config(tmp_path: Path, url: str, level: str = "info") -> Path:
    config = tmp_path / "listend.yaml"
    text = CONFIG.format(state=tmp_path / "state", level=level, url=url, sample=SAMPLE)
    config.write_text(text, encoding="utf-8")
    return config


def run_daemon(
    tmp_path: Path, url: str, *, journal: bool, level: str = "info", extra: tuple[str, ...] = ()
) -> str:
    """Run the daemon on a short file; return its stderr. ``journal``: as systemd would."""
    config = write_config(tmp_path, url, level)
    env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "NOTIFY_SOCKET")}
    env["LOGTEST_KEY"] = SECRET
    read_end, write_end = os.pipe()
    if journal:
        # systemd sets JOURNAL_STREAM to the device:inode of the stream it connects to stderr
        info = os.fstat(write_end)
        env["JOURNAL_STREAM"] = f"{info.st_dev}:{info.st_ino}"
    with os.fdopen(read_end, "rb") as reader:
        proc = subprocess.Popen(
            listend_cmd(*extra, "run", str(config)),
            stdout=subprocess.DEVNULL,
            stderr=write_end,
            env=env,
            cwd=ROOT,
        )
        os.close(write_end)
        try:
            output = reader.read().decode()
            assert proc.wait(timeout=60) == 0, output
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    return output


def test_under_journald_priorities_and_no_timestamps(tmp_path: Path, dg_url: str) -> None:
    output = run_daemon(tmp_path, dg_url, journal=True)
    lines = output.splitlines()
    assert lines, output
    assert all(re.match(r"<[2-7]>", line) for line in lines), output
    assert not any(TIMESTAMP.search(line[3:]) for line in lines), output
    assert any(line.startswith("<6>listend: listend ") for line in lines), output


def test_journal_stream_of_another_file_is_ignored(tmp_path: Path, dg_url: str) -> None:
    """JOURNAL_STREAM inherited but stderr redirected elsewhere: a human reads it."""
    config = write_config(tmp_path, dg_url)
    env = dict(os.environ, JOURNAL_STREAM="1:1", LOGTEST_KEY=SECRET)
    result = subprocess.run(
        listend_cmd("run", str(config)),
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert TIMESTAMP.match(result.stderr), result.stderr


def test_elsewhere_timestamps(tmp_path: Path, dg_url: str) -> None:
    output = run_daemon(tmp_path, dg_url, journal=False)
    assert all(TIMESTAMP.match(line) for line in output.splitlines() if line[:1] != " "), output


def test_level_from_config_and_command_line(tmp_path: Path, dg_url: str) -> None:
    quiet = run_daemon(tmp_path, dg_url, journal=True, level="warning")
    assert not any(line.startswith("<6>") for line in quiet.splitlines()), quiet
    loud = run_daemon(
        tmp_path, dg_url, journal=True, level="warning", extra=("--log-level", "debug")
    )
    assert any(line.startswith("<6>") for line in loud.splitlines()), loud


def test_secrets_never_logged(tmp_path: Path, dg_url: str) -> None:
    """The key is used (the server accepts only it), and at debug level it still never shows."""
    output = run_daemon(tmp_path, dg_url, journal=False, extra=("--log-level", "debug"))
    assert "connected" in output, output
    assert SECRET not in output


def test_the_authorization_header_is_not_in_reprs(monkeypatch) -> None:
    """Tracebacks and debug logs show objects' reprs: the endpoint must not carry the key."""
    from listend.daemon.config.models import ListendConfig  # noqa: PLC0415
    from listend.daemon.stream.endpoint import build_endpoint  # noqa: PLC0415

    monkeypatch.setenv("LOGTEST_KEY", SECRET)
    config = ListendConfig.model_validate(
        {"deepgram": {"api_key": "$env:LOGTEST_KEY", "url": "http://127.0.0.1:1"}}
    )
    endpoint = build_endpoint(config)
    assert endpoint.authorization == f"Token {SECRET}"
    assert SECRET not in repr(endpoint)
    assert SECRET not in repr(config)
