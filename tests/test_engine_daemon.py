"""`listend run` with no API key: the embedded offline engine, as a new user first sees it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.support.cli import listend_cmd, run_listend
from tests.support.evaluation import word_error_rate
from tests.support.paths import ROOT

pytestmark = pytest.mark.xdist_group("local-engine")

SAMPLE_SENTENCES = (  # what scripts/make-sample.sh says in config/samples/hello.wav
    "the library closes at six on saturday",
    "what is the weather like today",
    "one two three four five",
)


def children(pid: int) -> list[int]:
    listing = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return [int(line) for line in listing.stdout.split()]


@pytest.fixture
def no_key_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DEEPGRAM_API_KEY"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_example_config_captions_the_sample_and_stops_on_ctrl_c(tmp_path, no_key_env):
    """What `make run` does, with stdout piped (JSON lines) and Ctrl-C as SIGINT."""
    (tmp_path / "config" / "samples").mkdir(parents=True)
    for name in ("listend.example.yaml", "samples/hello.wav"):
        shutil.copy(ROOT / "config" / name, tmp_path / "config" / name)
    process = subprocess.Popen(
        listend_cmd("run", "config/listend.example.yaml"),
        cwd=tmp_path,
        env=no_key_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    finals = []
    try:
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        while len(finals) < 2 and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            event = json.loads(line)
            if event.get("is_final") and event["text"]:
                finals.append(event)
        workers = children(process.pid)
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert len(finals) == 2, err
    assert all(e["engine"] == "local" for e in finals)
    said = " ".join(SAMPLE_SENTENCES[:2])
    heard = " ".join(e["text"] for e in finals)
    assert word_error_rate([(said, heard)]) <= 0.5  # measured 0.23 (cold decoder)
    assert err.count("embedded offline engine") == 1  # the one line saying so
    assert "Traceback" not in err
    lines = (tmp_path / "state" / "transcripts").glob("sample-*.jsonl")
    written = [json.loads(line) for path in lines for line in path.read_text().splitlines()]
    assert [e["id"] for e in finals] == [e["id"] for e in written][:2]
    assert len(workers) == 1
    for pid in workers:  # no worker outlives the daemon
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_fast_file_run_to_the_end(tmp_path, no_key_env, write_config):
    sample = ROOT / "config" / "samples" / "hello.wav"
    config = write_config(
        f"""
device: test
state_dir: {tmp_path / "state"}
deepgram:
  url: local
  options: {{punctuate: true, endpointing: 300}}
sources:
  sample: {{type: file, path: {sample}, realtime: false}}
sinks:
  out: {{type: stdout, format: jsonl}}
"""
    )
    result = run_listend("run", str(config), env=no_key_env, timeout=120)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    finals = [e for e in events if e.get("is_final") and e["text"]]
    heard = " ".join(e["text"] for e in finals)
    assert word_error_rate([(" ".join(SAMPLE_SENTENCES), heard)]) <= 0.5
    assert "deepgram.url is local: transcribing with the embedded offline engine" in result.stderr
    starts = [w["start"] for e in finals for w in e["words"]]
    assert starts == sorted(starts)
    assert all(e["engine"] == "local" for e in finals)
