"""Where things are: the repository root and the test fixtures."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
#: The bundled speech sample, absolute: configs in temporary directories resolve relative paths
#: against their own directory.
SAMPLE = ROOT / "config" / "samples" / "hello.wav"
