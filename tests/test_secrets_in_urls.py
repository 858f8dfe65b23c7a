"""A password in a URL (``http://u:PASS@host/``) is refused at validation, never logged."""

from __future__ import annotations

import pytest

from listend.daemon.config.urls import redact_url
from tests.support.cli import run_listend

PASSWORD = "s3cr3t-pass"


CASES = [
    (
        f"sinks:\n  hook:\n    type: http\n    url: http://u:{PASSWORD}@127.0.0.1:9/x\n",
        "sinks.hook.url",
        "basic_auth:",
    ),
    (
        f"deepgram:\n  url: https://me:{PASSWORD}@dg.example\nsinks:\n  out:\n    type: stdout\n",
        "deepgram.url",
        "api_key:",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=["http-sink", "deepgram"])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_userinfo_in_a_url_is_a_config_error_without_the_password(
    write_config, tmp_path, case, command
):
    snippet, where, instead = case
    config = write_config(f"device: t\nstate_dir: {tmp_path}/state\n{snippet}")
    result = run_listend(command, str(config))
    assert result.returncode == 78, result.stderr
    assert f"{where}: the URL holds a user name or password" in result.stderr
    assert f"use {instead}" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_transcribe_refuses_a_password_in_url(tmp_path):
    result = run_listend("transcribe", "--url", f"http://u:{PASSWORD}@127.0.0.1:9", "/dev/null")
    assert result.returncode == 1
    assert "--url: the URL holds a user name or password" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def test_redact_url():
    assert redact_url(f"https://u:{PASSWORD}@host:8/p?q=1") == "https://***@host:8/p?q=1"
    assert redact_url("https://host/p") == "https://host/p"
