"""Generated hostile configs, and the child that feeds them to ``listend validate``.

:func:`mutants` derives configs from a valid one (byte flips, YAML tokens spliced in, values
swapped for odd ones, nesting, aliases) from a fixed seed, so a failure reproduces. Run as
``python -m tests.support.fuzz DIR SECONDS``, it validates ``DIR/*.yaml`` in order, starting
none after SECONDS, with the real command line entry point in this one process (one
interpreter per case would cost the whole budget) and prints a JSON line per case: exit code,
stderr, CPU seconds. The test runs it under resource limits, so a case that ate memory or time
fails the test instead of the machine.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

from tests.support.hostile import alias_bomb, good_config

TOKENS = [
    "[", "]", "{", "}", ":", ": ", "- ", ",", "&a ", "*a", "*b", "<<: *a", "!!str ", "!!binary ",
    "!!python/name:os.system", "? ", "|", ">", "---\n", "...\n", "%YAML 1.1\n", "\t", "\0", "\\0",
    "~", "yes", "no", "on", "1e999", "1.0e+999", ".nan", "-.inf", "-1", "0", "9" * 40, "0x1F",
    "2026-13-45", "'", '"', "#", "\n", "\n  ", "\r", "\x85", "\u2028", "\ufeff", "\ud7ff", "é",
    "$env:NOPE", "$file:/etc/shadow", "$file:/dev/zero", "$credential:x", "/etc/passwd",
    "type: ", "sources:",
]  # fmt: skip

VALUES = [
    "~", "true", "1e999", ".nan", "-5", "0", "1.0e+39", "18446744073709551617", "''", "[]", "{}",
    "[1, [2, [3]]]", "{a: {b: {c: d}}}", '"\\0"', '"\\x07"', "x" * 5000, "/etc/passwd",
    "/dev/zero", "/proc/self/mem", "$file:/dev/zero", "$file:/dev/urandom",
    "http://user:pw@127.0.0.1/x", "$env:UNSET_VAR", "*undefined",
]  # fmt: skip


def mutants(seed: int, count: int, state: Path) -> Iterator[bytes]:
    """``count`` configs derived from a valid one; the same seed gives the same configs."""
    rng = random.Random(seed)
    base = good_config(state, extra="deepgram: {finalize_timeout: 3, options: {model: nova-3}}\n")
    strategies = [_flip_bytes, _splice_tokens, _swap_value, _nest, _aliases, _truncate]
    for _ in range(count):
        yield rng.choice(strategies)(rng, base)


def _flip_bytes(rng: random.Random, text: str) -> bytes:
    data = bytearray(text.encode())
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def _splice_tokens(rng: random.Random, text: str) -> bytes:
    for _ in range(rng.randint(1, 5)):
        at = rng.randrange(len(text) + 1)
        text = text[:at] + rng.choice(TOKENS) + text[at:]
    return text.encode("utf-8", "surrogatepass")


def _swap_value(rng: random.Random, text: str) -> bytes:
    lines = text.splitlines()
    index = rng.randrange(len(lines))
    key, sep, _value = lines[index].partition(": ")
    if sep:
        lines[index] = f"{key}: {rng.choice(VALUES)}"
    return ("\n".join(lines) + "\n").encode()


def _nest(rng: random.Random, text: str) -> bytes:
    depth = rng.choice([10, 63, 65, 200, 3000])
    opener, closer = rng.choice([("[", "]"), ("{a: ", "}")])
    return (text + f"x: {opener * depth}1{closer * depth}\n").encode()


def _aliases(rng: random.Random, text: str) -> bytes:
    return (text + alias_bomb(rng.randint(2, 12))).encode()


def _truncate(rng: random.Random, text: str) -> bytes:
    return text.encode()[: rng.randrange(len(text))]


def _validate(path: Path) -> dict[str, object]:
    from listend.cli import main  # noqa: PLC0415 - the child's import, timed once

    err = io.StringIO()
    started = time.process_time()  # CPU, not wall time: the cores are shared with other tests
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["validate", str(path)])
    except BaseException:  # what escapes main() is the finding: keep where it was raised
        code, err = -1, io.StringIO(traceback.format_exc(limit=-4))
    return {"case": path.name, "code": code, "stderr": err.getvalue(),
            "cpu_seconds": time.process_time() - started}  # fmt: skip


if __name__ == "__main__":
    deadline = time.monotonic() + float(sys.argv[2])  # the time budget: stop starting cases
    for case in sorted(Path(sys.argv[1]).glob("*.yaml")):
        if time.monotonic() > deadline:
            break
        print(json.dumps(_validate(case)), flush=True)
