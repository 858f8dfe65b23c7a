"""The benchmark harness (bench/): a short smoke run of both sides, and the report's section.

Benchmarks are never timed assertions: this only checks that the harness runs end to end
and measures something, so `make bench` does not rot between runs.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

BENCH = ROOT / "bench"


def run_bench(script: str, *args: str, workdir: Path) -> list[dict]:
    """Run ``bench/SCRIPT ARGS --workdir WORKDIR``; the JSON lines it printed."""
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_streams_smoke_run_measures_both_sides(tmp_path):
    runs = run_bench("streams.py", "--streams", "2", "--seconds", "9", workdir=tmp_path)
    assert [r["side"] for r in runs] == ["listend", "baseline"]
    for run in runs:
        assert run["exit_code"] == 0
        assert run["streams"] == 2
        assert run["cpu_per_stream_minute"] > 0
        assert run["rss_mb"] > 10
        assert run["finals"] > 0  # finals matched between the server and the subscriber
        assert 0 < run["latency_p50_ms"] <= run["latency_p99_ms"]


@pytest.mark.slow
def test_catchup_smoke_run_measures_a_reconnect(tmp_path):
    args = ("--outage", "2", "--speeds", "10", "--give-up", "20")
    (run,) = run_bench("catchup.py", *args, workdir=tmp_path)
    assert run["catchup_speed"] == 10
    assert run["backlog_s"] >= 2  # at least the outage
    assert run["reconnect_after_s"] >= 2
    assert run["caught_up_s"] is None or run["caught_up_s"] >= 0
    assert run["words_delivered"] > 0
    assert run["each_word_once"] is True


def test_report_replaces_only_its_own_section(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_report", BENCH / "report.py")
    assert spec is not None
    assert spec.loader is not None
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    target = tmp_path / "RESULTS.md"
    target.write_text("# Benchmark results\n\n## Local engine\n\nkept\n")
    report.write_section(target, "## ours\n\nfirst")
    report.write_section(target, "## ours\n\nsecond")
    text = target.read_text()
    assert "kept" in text
    assert "first" not in text
    assert text.count(report.START) == text.count(report.END) == 1
    assert "second" in text
