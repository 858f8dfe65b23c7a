"""Generated speech and word error rate: how the tests and bench/ measure the local engine."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

_TOKEN = re.compile(r"[a-z0-9']+")


def normalize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference length), by edit distance."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        previous, row = row, [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
    return row[-1], len(ref)


def word_error_rate(pairs: list[tuple[str, str]]) -> float:
    """Corpus WER over (reference, hypothesis) pairs."""
    errors = words = 0
    for reference, hypothesis in pairs:
        e, n = word_errors(reference, hypothesis)
        errors += e
        words += n
    return errors / words if words else 0.0


def synthesize(text: str, path: Path, *, rate: int = 16000, speed: int = 160) -> Path:
    """Speak ``text`` with espeak-ng into a mono 16-bit WAV at ``rate`` Hz (via sox)."""
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if espeak is None or sox is None:
        raise RuntimeError("espeak-ng and sox are needed (scripts/setup-system.sh installs them)")
    raw = path.with_suffix(".espeak.wav")
    subprocess.run(
        [espeak, "-v", "en-us", "-s", str(speed), "-w", str(raw), text],
        check=True,
        capture_output=True,
        timeout=60,
    )
    subprocess.run(
        # -D: no dither, so the same text always gives the same samples (repeatable tests).
        [
            sox,
            "-D",
            str(raw),
            "-r",
            str(rate),
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    raw.unlink()
    return path
