"""Twenty Assist requests in a row, as bench/wyoming_bench.py makes them: every transcript
exact and every answer measured (the latency is reported by the bench, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.paths import ROOT


def test_twenty_requests_in_a_row_are_all_exact():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "wyoming_bench.py"), "--fast", "--no-write"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=170,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["requests"] == 20
    assert result["exact"] == 20
    assert len(result["latencies_ms"]) == 20
