"""The fuzz job (part of `make test`, about a minute): generated configs from a fixed seed fed
to `listend validate` in a child under memory, CPU and time limits. Every case must end with
exit 0, 78 or 1 and one `listend:` message, never a traceback, never past the limits.

Generated WAV files (for the engine and ``validate``) are the other half: test_fuzz_wav.py.
"""

from __future__ import annotations

import json
import resource
from pathlib import Path

import pytest

from tests.support.cli import run_listend, run_python
from tests.support.fuzz import mutants

SEED = 14
CASES = 1200
BUDGET_SECONDS = 40  # the child starts no case after this; on an idle machine it does them all
AT_LEAST = 100  # cases done even with both cores busy (about 1200 when idle)
MEMORY = 1536 * 1024 * 1024  # address space of the child: a bomb that slips through hits it
CPU_SECONDS = 90
WALL_SECONDS = 150
CASE_CPU_SECONDS = 5.0  # the slowest case may take; real configs validate in milliseconds


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    for number, data in enumerate(mutants(SEED, CASES, root / "state")):
        (root / f"case-{number:04d}.yaml").write_bytes(data)
    return root


def test_generated_configs_get_an_exit_code_and_one_message(cases: Path) -> None:
    child = run_python(
        ["-m", "tests.support.fuzz", str(cases), str(BUDGET_SECONDS)],
        timeout=WALL_SECONDS,
        limits=_limits,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    results = [json.loads(line) for line in child.stdout.splitlines()]
    assert len(results) >= AT_LEAST, child.stderr[-3000:]
    bad = [
        r
        for r in results
        if r["code"] not in (0, 1, 78)
        or (r["code"] and not r["stderr"].startswith("listend: "))
        or "Traceback" in r["stderr"]
        or r["cpu_seconds"] > CASE_CPU_SECONDS
    ]
    assert bad == [], "\n".join(f"{r['case']}: {r['code']}: {r['stderr'][-1500:]}" for r in bad[:5])
    refused = sum(1 for r in results if r["code"] == 78)
    assert refused > len(results) // 2, "the mutations should mostly break the config"


def test_the_command_line_agrees_with_the_in_process_run(cases: Path) -> None:
    """A sample through the real `listend validate` process: its exit code and one message."""
    for path in sorted(cases.glob("*.yaml"))[:: CASES // 6]:
        result = run_listend("validate", str(path), timeout=60)
        assert result.returncode in (0, 1, 78), result.stderr
        assert "Traceback" not in result.stderr
        if result.returncode:
            assert result.stderr.startswith("listend: ")
