"""The example configs a new user starts from validate, from any directory; relative paths in a
config mean next to the config file; `make run` installs only what running needs."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from listend.daemon.config.loader import parse_config
from listend.daemon.config.models import ListendConfig
from listend.daemon.plugin.manager import load_plugins
from tests.support.cli import run_listend
from tests.support.paths import ROOT, SAMPLE

EXAMPLES = ROOT / "config" / "examples"
EXPECTED = {
    "pi-microphone.yaml",  # what scripts/install.sh puts in /etc/listend
    "ffmpeg-rtsp.yaml",
    "home-assistant-mqtt.yaml",
    "kiosk-captions.yaml",
    "offline-only.yaml",
}


def test_the_common_setups_have_an_example():
    assert {p.name for p in EXAMPLES.glob("*.yaml")} >= EXPECTED


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_example_validates_from_elsewhere(example, tmp_path):
    path = EXAMPLES / example
    text = path.read_text(encoding="utf-8")
    credentials = tmp_path / "credentials"  # what systemd's LoadCredential= would provide
    credentials.mkdir()
    for name in re.findall(r"\$credential:([\w-]+)", text):
        (credentials / name).write_text(f"value-of-{name}", encoding="utf-8")
    env = {
        "PATH": "/usr/bin:/bin",
        "CREDENTIALS_DIRECTORY": str(credentials),
        "STATE_DIRECTORY": str(tmp_path / "state"),
    }
    result = run_listend("validate", str(path), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r": ok \(\d+ sources", result.stdout)


def test_the_demo_config_runs_from_any_directory(tmp_path):
    result = run_listend("validate", str(ROOT / "config" / "listend.example.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    shutil.copy(SAMPLE, tmp_path / "door.wav")
    (tmp_path / "key.txt").write_text("k-123\n", encoding="utf-8")
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    text = (
        "state_dir: state\n"
        "deepgram:\n  api_key: $file:key.txt\n"
        "sources:\n  door:\n    type: file\n    path: door.wav\n"
        "sinks:\n  broker:\n    type: mqtt\n    tls: {ca_file: certs/ca.pem}\n"
    )
    config = parse_config(text, str(tmp_path / "listend.yaml"), load_plugins())
    assert config.state_dir == tmp_path / "state"
    assert config.sources["door"].path == tmp_path / "door.wav"
    assert config.sinks["broker"].tls.ca_file == tmp_path / "certs" / "ca.pem"
    assert config.deepgram.effective_api_key() == "k-123"
    # absolute stays absolute
    config = parse_config(
        f"state_dir: {tmp_path}/abs\nsources:\n  door: {{type: file, path: {SAMPLE}}}\n",
        str(tmp_path / "sub" / "x.yaml"),
        load_plugins(),
    )
    assert config.state_dir == tmp_path / "abs"


def test_an_unset_key_falls_back_to_the_service_credential(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert ListendConfig().deepgram.uses_local_engine(), "no credential: the offline engine"
    (tmp_path / "deepgram").write_text("dg-from-credential\n", encoding="utf-8")
    assert ListendConfig().deepgram.effective_api_key() == "dg-from-credential"
    monkeypatch.setenv("DEEPGRAM_API_KEY", "dg-from-env")
    assert ListendConfig().deepgram.effective_api_key() == "dg-from-env"


def test_make_run_installs_only_what_running_needs():
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    # -B: as if nothing were built yet; -n: only print the commands
    result = subprocess.run(
        [make, "-C", str(ROOT), "-n", "-B", "run", "VENV=/nonexistent-venv"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    commands = result.stdout
    assert "setup-system.sh --runtime" in commands
    assert "[test]" not in commands
    assert re.search(r"pip install --quiet -e \.$", commands, re.MULTILINE)
    assert "listend run config/listend.example.yaml" in commands
