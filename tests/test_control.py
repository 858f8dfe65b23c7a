"""`listend status` and `listend tail` against a running daemon, over its control socket; the
socket refuses users outside root and the service's group (kernel permissions and
SO_PEERCRED/SO_PEERGROUPS)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from listend.testing import Script, running_server
from tests.support.cli import DaemonProcess, listend_cmd, run_listend
from tests.support.paths import ROOT
from tests.support.sessions import config_text
from tests.support.waiting import wait_until

DEADLINE = 60.0
NOBODY = 65534
SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")
#: A client outside the daemon's python: the system interpreter, as another user.
PEER_CLIENT = (
    "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
    's.sendall(b\'{"cmd": "status"}\\n\'); print(s.makefile().readline().strip())'
)


@pytest.fixture
def daemon(tmp_path) -> Iterator[tuple[DaemonProcess, Path]]:
    """A daemon looping over scripted speech; its socket in a short runtime directory."""
    runtime = Path(tempfile.mkdtemp(prefix="ld-", dir="/tmp"))  # AF_UNIX paths: < 108 bytes
    wav = Script().say("turn on the kitchen lights").silence(0.5).write_wav(tmp_path / "s.wav")
    with running_server() as dg:
        text = config_text(dg.url, wav, extra_source="    loop: true\n")
        config = tmp_path / "listend.yaml"
        config.write_text(text, encoding="utf-8")
        env = {**os.environ, "DG_TEST_KEY": dg.api_key, "RUNTIME_DIRECTORY": str(runtime)}
        proc = DaemonProcess(config, tmp_path / "d.log", env=env)
        try:
            proc.wait_log("control socket on")
            yield proc, runtime / "control.sock"
        finally:
            code = proc.terminate()
            shutil.rmtree(runtime, ignore_errors=True)
    assert code == 0, proc.log()


def status_json(sock: Path) -> dict:
    result = run_listend("status", "--socket", str(sock), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_status_shows_each_stream_and_sink(daemon):
    _proc, sock = daemon
    mode = sock.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660
    assert sock.stat().st_gid == os.getegid()

    def finals_seen() -> bool:
        return status_json(sock)["streams"]["hall"]["finals"] > 0

    wait_until(finals_seen, DEADLINE, "a final counted in status")
    document = status_json(sock)
    assert document["phase"] == "running"
    hall = document["streams"]["hall"]
    assert hall["connected"] is True
    assert hall["engine"] == "deepgram"
    assert hall["seconds_streamed"] > 0
    assert hall["seconds_gated"] == 0  # no vad: nothing held back
    assert hall["last_final_age_seconds"] >= 0
    assert hall["lag_seconds"] >= 0
    out = document["sinks"]["out"]
    assert out["type"] == "stdout"
    assert out["connected"] is True
    assert out["failing_since"] is None
    assert out["outbox_depth"] >= 0
    text = run_listend("status", "--socket", str(sock))
    assert text.returncode == 0, text.stderr
    assert "running" in text.stdout
    assert "hall" in text.stdout
    assert "connected" in text.stdout


def test_tail_filters_by_source_and_kind(daemon):
    _proc, sock = daemon
    command = listend_cmd("tail", "--socket", str(sock), "--source", "hall", "--kind", "final")
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT) as tail:
        try:
            assert tail.stdout is not None
            lines = [json.loads(tail.stdout.readline()) for _ in range(2)]  # waits for them
        finally:
            tail.terminate()
    for event in lines:
        assert event["source"] == "hall"
        assert event["type"] == "transcript"
        assert event["is_final"] is True
    assert "kitchen" in " ".join(e["text"] for e in lines)


def test_tail_of_another_source_shows_nothing_of_this_one(daemon):
    _proc, sock = daemon
    command = listend_cmd("tail", "--socket", str(sock), "--source", "elsewhere")
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT) as tail:
        wait_until(lambda: status_json(sock)["streams"]["hall"]["finals"] >= 2, DEADLINE, "2")
        tail.terminate()
        output, _ = tail.communicate(timeout=10)
    assert output == ""


def test_status_without_a_daemon_is_one_clear_line(tmp_path):
    result = run_listend("status", "--socket", str(tmp_path / "none.sock"))
    assert result.returncode == 1
    assert "no daemon listening" in result.stderr
    assert "Traceback" not in result.stderr


def as_user(*groups: int) -> list[str]:
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run a client as another uid")
    group_args = ["--groups", ",".join(map(str, groups))] if groups else ["--clear-groups"]
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", *group_args]


def peer_status(sock: Path, *groups: int) -> subprocess.CompletedProcess[str]:
    python = next((p for p in SYSTEM_PYTHONS if Path(p).is_file()), None)
    if python is None:
        pytest.skip("needs a system python3 another user can run")
    return subprocess.run(
        [*as_user(*groups), python, "-c", PEER_CLIENT, str(sock)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_socket_refuses_a_user_outside_the_group(daemon):
    proc, sock = daemon
    as_user()  # skips unless root
    sock.parent.chmod(0o755)  # the runtime directory: let the other user reach the socket
    denied = peer_status(sock)
    assert denied.returncode != 0
    assert "PermissionError" in denied.stderr  # mode 0660: the kernel refuses the connect
    sock.chmod(0o666)  # loosened by mistake: the peer check still refuses
    refused = peer_status(sock)
    assert refused.stdout.strip(), refused.stderr
    assert json.loads(refused.stdout) == {"error": "permission denied"}, refused.stderr
    proc.wait_log(f"control socket: refused uid {NOBODY}")
    member = peer_status(sock, os.getegid())  # a member of the service's group
    assert json.loads(member.stdout)["streams"]["hall"]["engine"] == "deepgram", member.stderr
