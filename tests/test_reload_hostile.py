"""A reload that fails for any reason (a file that is not UTF-8, nested past the stack, an
alias bomb, a plugin raising something unexpected) logs one error and keeps the old config
running: a real `listend run` child, SIGHUP, then its log and a reload that works."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from listend.testing import ThreadedDeepgramTestServer
from tests.support.cli import DaemonProcess
from tests.support.hostile import HELLO, HOSTILE
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

FAILED = "reload failed, still running the previous configuration"
BAD_RELOADS = ["latin1", "deep-brackets", "alias-bomb", "binary", "null-key", "empty"]


def config_text(dg_url: str, state: Path, memo: Path) -> str:
    return f"""\
device: reload
state_dir: {state}
deepgram: {{api_key: $env:RELOAD_DG_KEY, url: {dg_url}}}
sources:
  hall: {{type: file, path: {HELLO}, loop: true}}
sinks:
  notes: {{type: memo, path: {memo}}}
"""


@pytest.fixture
def dg() -> Iterator[ThreadedDeepgramTestServer]:
    with ThreadedDeepgramTestServer() as server:
        yield server


def test_bad_reloads_keep_the_old_config_running(
    tmp_path: Path, dg, echo_plugin_path: Path
) -> None:
    memo = tmp_path / "memo.jsonl"
    good = config_text(dg.url, tmp_path / "state", memo)
    config = tmp_path / "listend.yaml"
    config.write_text(good)
    env = {
        **os.environ,
        "RELOAD_DG_KEY": dg.api_key,
        "PYTHONPATH": f"{echo_plugin_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    daemon = DaemonProcess(config, tmp_path / "daemon.log", env=env)
    try:
        daemon.wait_log("ready: ")
        cases = {c.name: c for c in HOSTILE}
        bad = [cases[name].data(tmp_path / "state") for name in BAD_RELOADS]
        # a plugin's constructor failing its own way while the reload builds the new sink
        bad.append(good.replace(str(memo), str(tmp_path / "crash-in-constructor")).encode())
        for number, data in enumerate(bad, start=1):
            config.write_bytes(data)
            daemon.proc.send_signal(signal.SIGHUP)
            wait_until(
                lambda n=number: daemon.log().count(FAILED) == n,
                60,
                f"reload {number} refused",
            )
            assert daemon.proc.poll() is None, daemon.log()
        log = daemon.log()
        assert "Traceback" not in log
        assert "RuntimeError: memo sink: unexpected failure" in log
        assert dg.connections
        assert not dg.connections[0].closed.is_set()
        # still able to reload: the same config with the sink's path changed
        config.write_text(good.replace("memo.jsonl", "memo2.jsonl"))
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_log("reloaded: restarted sinks notes", timeout=60)
    finally:
        code = daemon.terminate()
    assert code == 0, daemon.log()
