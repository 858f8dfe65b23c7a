"""The command line a new user meets: help for everything, options after the command, no
traceback on a closed pipe, YAML from `validate --show`, versions, the generated man page and
completion, the ffmpeg hint for compressed files, and a stop signal delivered twice."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess

import pytest
import yaml

from listend.cli import build_parser
from listend.manual import commands
from tests.support.cli import listend_cmd, run_listend
from tests.support.paths import ROOT, SAMPLE
from tests.support.waiting import wait_until

DEMO = str(ROOT / "config" / "listend.example.yaml")


def test_every_command_and_option_has_help():
    parser = build_parser()
    assert "internal" not in (parser.description or "")
    assert parser.description
    assert parser.description.startswith("listend: an edge speech-to-text daemon")
    for name, sub in {"listend": parser, **commands(parser)}.items():
        assert sub.description, name
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest}"


def test_global_options_work_after_the_command():
    result = run_listend("validate", "--log-level", "debug", DEMO)
    assert result.returncode == 0, result.stderr
    assert "DEBUG" in result.stderr


def test_no_traceback_on_a_closed_pipe():
    for args in (("schema",), ("validate", "--show", DEMO)):
        proc = subprocess.Popen(
            listend_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
        )
        assert proc.stdout is not None
        proc.stdout.close()  # the reader is gone before listend writes a byte
        _out, err = proc.communicate(timeout=60)
        assert b"Traceback" not in err, err.decode()
        assert b"BrokenPipe" not in err, err.decode()
        assert proc.returncode == 141  # as if killed by SIGPIPE, which shells expect


def test_validate_show_prints_yaml():
    result = run_listend("validate", DEMO, "--show")
    assert result.returncode == 0, result.stderr
    first, _, rest = result.stdout.partition("\n")
    assert first.endswith("ok (1 sources, 2 sinks)")
    shown = yaml.safe_load(rest)
    assert shown["sources"]["sample"]["type"] == "file"
    assert shown["sources"]["sample"]["path"] == str(SAMPLE)  # resolved next to the config


def test_version_names_the_sdk_and_the_engine():
    result = run_listend("--version")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("listend ")
    assert "deepgram-sdk 7.17.0" in lines
    assert any(line.startswith("engine: pocketsphinx ") for line in lines)


def test_manpage_covers_every_command():
    page = run_listend("manpage").stdout
    assert page.startswith(".TH LISTEND 1")
    for name in commands(build_parser()):
        assert f'.SS "{name}"' in page
    man = shutil.which("man")
    if man is not None:
        rendered = subprocess.run(
            [man, "-l", "-"], input=page, capture_output=True, text=True, timeout=60, check=False
        )
        if rendered.returncode == 0:
            assert "EXIT STATUS" in rendered.stdout


def test_bash_completion_completes_commands_and_choices(tmp_path):
    script = tmp_path / "listend.bash"
    script.write_text(run_listend("completion", "bash").stdout, encoding="utf-8")

    def complete(*words: str) -> list[str]:
        quoted = " ".join(f"'{w}'" for w in words)
        probe = (
            f"source {script}; COMP_WORDS=(listend {quoted}); COMP_CWORD={len(words)}; "
            '_listend; printf "%s\\n" "${COMPREPLY[@]}"'
        )
        out = subprocess.run(
            ["bash", "-c", probe], capture_output=True, text=True, timeout=30, check=True
        )
        return out.stdout.split()

    assert complete("val") == ["validate"]
    assert "--show" in complete("validate", "--")
    assert "--log-level" in complete("validate", "--")
    assert complete("validate", "--log-level", "de") == ["debug"]
    assert complete("transcribe", "--format", "s") == ["srt"]


def test_a_compressed_file_suggests_the_ffmpeg_command_source(write_config, tmp_path):
    mp3 = tmp_path / "talk.mp3"
    mp3.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 100)
    path = write_config(f"sources:\n  talk:\n    type: file\n    path: {mp3}\n")
    result = run_listend("validate", str(path))
    assert result.returncode == 78
    assert "is an MP3 file, not WAV" in result.stderr
    assert "`command` source" in result.stderr
    assert "ffmpeg" in result.stderr
    assert "format: raw" not in result.stderr


@pytest.mark.slow
def test_a_stop_signal_sent_to_the_process_group_counts_once(write_config, tmp_path):
    """What `timeout -s INT 6 listend run` does: the signal to listend, then to its group."""
    path = write_config(
        f"state_dir: {tmp_path / 'state'}\ndeepgram: {{url: local}}\n"
        f"sources:\n  s:\n    type: file\n    path: {SAMPLE}\n    loop: true\n"
        "sinks:\n  out:\n    type: file\n"
    )
    log = tmp_path / "daemon.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            listend_cmd("run", str(path)),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=ROOT,
            start_new_session=True,  # its own process group, as under timeout(1)
        )
    try:
        wait_until(lambda: "daemon: ready: " in log.read_text(), 60, "the daemon ready")
        os.kill(proc.pid, signal.SIGINT)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 0, log.read_text()
        assert "exiting without draining" not in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.slow
def test_run_into_a_closed_pipe_has_no_traceback(write_config, tmp_path):
    """`listend run | head`: the stdout sink's reader goes away; events stay in its outbox."""
    path = write_config(
        f"state_dir: {tmp_path / 'state'}\ndeepgram: {{url: local}}\n"
        f"sources:\n  s:\n    type: file\n    path: {SAMPLE}\n    realtime: false\n"
        "sinks:\n  out:\n    type: stdout\n    format: jsonl\n    outbox: {drain_timeout: 1}\n"
    )
    proc = subprocess.Popen(
        listend_cmd("run", str(path)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    )
    assert proc.stdout is not None
    proc.stdout.close()  # nobody reads
    _out, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err, err.decode()
    assert b"Exception ignored" not in err, err.decode()
    assert b"stdout is closed" in err, err.decode()
    assert proc.returncode == 0, err.decode()
