"""The WAV half of the fuzz job: generated WAVs (fixed seed) and the regression table fed to the
embedded engine's ``POST /v1/listen`` and to ``listend validate`` of a config whose file source
is the WAV, in a child under memory and CPU limits, within a time budget; then a few through
the real ``listend transcribe --local``. The engine must answer 200 or a JSON 4xx (never a
500 or a dropped connection), and the commands exit 0, 78 or 1 with one ``listend:`` line.
"""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import run_python
from tests.support.hostile import good_config
from tests.support.wavfuzz import WAV_TABLE, wav_mutants

SEED = 14
CASES = 400
BUDGET_SECONDS = 20  # then the child starts no more cases (~200 done when idle)
AT_LEAST = 60  # cases done whatever the load (the table first): ~25 s with both cores busy
MEMORY = 1536 * 1024 * 1024  # address space of the child
CPU_SECONDS = 60
WALL_SECONDS = 120
CASE_CPU_SECONDS = 5.0  # a tenth of a second of audio and a header: milliseconds when right
CLI_CASES = 2  # each starts an engine: seconds apiece


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


def _one_message(code: int, stderr: str) -> bool:
    if "Traceback" in stderr or code not in (0, 1, 78):
        return False
    lines = [line for line in stderr.splitlines() if line.startswith("listend: ")]
    return code == 0 or (stderr.startswith("listend: ") and len(lines) == 1)


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wavfuzz")
    named = {f"table-{name}": case.data for name, case in WAV_TABLE.items()}
    generated = {f"case-{n:04d}": data for n, data in enumerate(wav_mutants(SEED, CASES))}
    for stem, data in (named | generated).items():
        path = root / f"{stem}.wav"
        path.write_bytes(data)
        source = f"  hall:\n    type: file\n    path: {path}\n"
        (root / f"{stem}.yaml").write_text(good_config(root / "state", source=source))
    return root


def _bad(r: dict[str, Any]) -> bool:
    engine_ok = r["status"] == 200 or (400 <= r["status"] < 500 and r["json"])
    return (
        not engine_ok
        or not _one_message(r["code"], r["stderr"])
        or r["cpu_seconds"] > (CASE_CPU_SECONDS)
    )


def test_generated_wavs_get_an_answer_and_one_message(cases: Path) -> None:
    child = run_python(
        ["-m", "tests.support.wavfuzz", str(cases), str(BUDGET_SECONDS), str(AT_LEAST)],
        timeout=WALL_SECONDS,
        limits=_limits,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    results = [json.loads(line) for line in child.stdout.splitlines()]
    assert len(results) >= AT_LEAST, child.stderr[-3000:]
    got = {r["case"]: (r["status"], r["code"]) for r in results}
    want = {f"table-{name}.wav": (case.status, case.code) for name, case in WAV_TABLE.items()}
    assert {name: got.get(name) for name in want} == want
    bad = [r for r in results if _bad(r)]
    assert bad == [], "\n".join(
        f"{r['case']}: HTTP {r['status']} {r['body'][:300]} / validate {r['code']}: "
        f"{r['stderr'][-800:]}"
        for r in bad[:5]
    )
    refused = sum(1 for r in results if r["status"] != 200)
    assert refused > len(results) // 4, "the mutations should often break the WAV"


def test_transcribe_local_on_a_sample_of_them(cases: Path) -> None:
    """A few through the real ``listend transcribe --local``: each starts its own engine."""
    sample = sorted(cases.glob("case-*.wav"))[:: CASES // CLI_CASES][:CLI_CASES]
    for path in [cases / "table-silence-16k.wav", *sample]:
        result = run_python(
            ["-m", "listend", "transcribe", "--local", str(path)], timeout=60, limits=_limits
        )
        assert _one_message(result.returncode, result.stderr), f"{path.name}: {result.stderr}"
