"""scripts/install.sh against a temporary root: the files it promises, a unit `systemd-analyze
verify` accepts, an upgrade in place that keeps config, state and outboxes, and an uninstall
that leaves config and state. Never boots systemd: with --prefix the installer runs no
systemctl that needs a running manager."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import ROOT

INSTALL = ROOT / "scripts" / "install.sh"
KEY = "dg-test-key-0123456789"

pytestmark = pytest.mark.slow  # builds a virtualenv (about 10 s with a warm pip cache)


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DEEPGRAM_API_KEY"}
    result = subprocess.run(
        ["bash", str(INSTALL), "--prefix", str(root), "--no-system-packages", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert KEY not in result.stdout + result.stderr, "the key must never be printed"
    return result


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def verify_unit(root: Path, tmp: Path) -> None:
    """The installed unit and its drop-ins, with ExecStart pointing into the prefix."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (scripts/setup-system.sh installs it)")
    installed = root / "etc/systemd/system"
    check = tmp / "verify"
    shutil.copytree(installed, check, symlinks=True, ignore=shutil.ignore_patterns("*.wants"))
    unit = check / "listend.service"
    text = unit.read_text(encoding="utf-8")
    unit.write_text(text.replace("/opt/listend/", f"{root}/opt/listend/"), encoding="utf-8")
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_install_upgrade_uninstall(tmp_path: Path) -> None:
    root = tmp_path / "root"
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n", encoding="utf-8")

    first = install(root, "--api-key-file", str(key_file), "--credential", "plain")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "listend installed" in first.stdout
    assert "ok (1 sources, 1 sinks)" in first.stdout  # it ran `listend validate`
    assert "Next steps" in first.stdout

    venv = root / "opt/listend"
    listend = venv / "bin/listend"
    assert listend.is_file()
    version = subprocess.run(
        [str(listend), "--version"], capture_output=True, text=True, check=True, timeout=60
    )
    assert "deepgram-sdk 7.17.0" in version.stdout
    pip = subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    installed = {line.split("==")[0].lower() for line in pip.stdout.splitlines()}
    assert "listend" in installed
    assert not {"pytest", "mypy", "ruff"} & installed, "runtime dependencies only"

    unit = root / "etc/systemd/system/listend.service"
    assert unit.read_text(encoding="utf-8") == (ROOT / "systemd/listend.service").read_text(
        encoding="utf-8"
    )
    wants = root / "etc/systemd/system/multi-user.target.wants/listend.service"
    assert wants.is_symlink(), "the unit is enabled"
    assert str(wants.readlink()) == "/etc/systemd/system/listend.service"
    verify_unit(root, tmp_path)

    config = root / "etc/listend/listend.yaml"
    assert config.read_text(encoding="utf-8") == (
        ROOT / "config/examples/pi-microphone.yaml"
    ).read_text(encoding="utf-8")
    credential = root / "etc/credstore/deepgram"
    assert credential.read_text(encoding="utf-8") == KEY
    assert mode(credential) == 0o600
    assert mode(credential.parent) == 0o700

    assert (root / "usr/local/share/man/man1/listend.1").read_text().startswith(".TH LISTEND 1")
    assert "complete " in (root / "usr/local/share/bash-completion/completions/listend").read_text()
    assert str((root / "usr/local/bin/listend").readlink()) == "/opt/listend/bin/listend"

    # What a running service leaves behind, and a config the user edited.
    config.write_text(config.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    outbox = root / "var/lib/listend/outbox/transcripts.sqlite3"
    outbox.parent.mkdir(parents=True)
    outbox.write_bytes(b"not really sqlite, but it must survive")

    upgrade = install(root)
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    assert "upgraded in place" in upgrade.stdout
    assert "keeping the existing" in upgrade.stdout
    assert config.read_text(encoding="utf-8").endswith("# edited\n")
    assert outbox.read_bytes() == b"not really sqlite, but it must survive"
    assert credential.read_text(encoding="utf-8") == KEY
    verify_unit(root, tmp_path / "again")

    removed = install(root, "--uninstall")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert not venv.exists()
    assert not unit.exists()
    assert not wants.exists()
    assert not (root / "usr/local/bin/listend").is_symlink()
    assert config.is_file(), "uninstall leaves the config"
    assert outbox.is_file(), "... and the state"
    assert credential.is_file()


def test_invalid_config_is_reported_and_kept(tmp_path: Path) -> None:
    root = tmp_path / "root"
    config = root / "etc/listend/listend.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("sources:\n  x: {type: nosuchtype}\n", encoding="utf-8")
    result = install(root)
    assert result.returncode == 1
    assert "nosuchtype" in result.stderr
    assert "enabled but not started" in result.stderr
    assert config.read_text(encoding="utf-8") == "sources:\n  x: {type: nosuchtype}\n"
