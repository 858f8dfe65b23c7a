"""final -> MQTT latency, two listend trees alternately in one run (A/B on a shared machine).

    python bench/latency_ab.py --a REV --b REV [--streams 1,32,128] [--rounds 2] [--seconds 30]

Each side is ``git archive REV`` of this repository unpacked to a temporary directory and put
first on ``PYTHONPATH`` (same interpreter and dependencies; ``PYTHONSAFEPATH`` keeps the
client's working directory, this checkout, off ``sys.path``), so a tree being edited is never
measured half-way. Per stream count the sides alternate (A B, then B A, ...) against the same
server and mosquitto as ``bench/streams.py``; each run prints one JSON line, and the summary
gives each side's median over rounds of p50 and p99, with the ratio and the 1-minute load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from common import ROOT, SERVICE_CORE, Subscriber, services
from streams import measure, write_audio


def unpack(rev: str, into: Path) -> Path:
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "listend"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--a", default="main")
    parser.add_argument("--b", default="HEAD")
    parser.add_argument("--streams", default="1,32,128")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workdir", type=Path, default=Path(__file__).resolve().parent / ".work")
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(SERVICE_CORE)})
    os.environ["PYTHONSAFEPATH"] = "1"
    counts = [int(c) for c in args.streams.split(",")]
    workdir = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    wav, duration = write_audio(workdir / "speech", args.seconds, max(counts))
    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, services(workdir) as svc:
        trees = {
            side: unpack(rev, Path(tmp) / side) for side, rev in (("a", args.a), ("b", args.b))
        }
        subscriber = Subscriber(svc.mqtt_port)
        try:
            for count in counts:
                for round_ in range(args.rounds):
                    order = ("a", "b") if round_ % 2 == 0 else ("b", "a")
                    for side in order:
                        os.environ["PYTHONPATH"] = str(trees[side])
                        run = measure("listend", svc, subscriber, wav, duration, count, workdir)
                        results.setdefault((side, count), []).append(
                            (run.latency_p50_ms, run.latency_p99_ms)
                        )
                        line = {"tree": side, "round": round_, "load1": os.getloadavg()[0]}
                        print(json.dumps({**line, **run.__dict__}), flush=True)
        finally:
            subscriber.close()
            os.environ.pop("PYTHONPATH", None)
    print(f"\na = {args.a}, b = {args.b}; median over {args.rounds} round(s); ms")
    print("| streams | a p50 | b p50 | a p99 | b p99 | b/a p99 |")
    print("|---:|---:|---:|---:|---:|---:|")
    for count in counts:
        a50, a99 = (statistics.median(v) for v in zip(*results[("a", count)], strict=True))
        b50, b99 = (statistics.median(v) for v in zip(*results[("b", count)], strict=True))
        ratio = b99 / a99 if a99 else float("nan")
        print(f"| {count} | {a50:.1f} | {b50:.1f} | {a99:.1f} | {b99:.1f} | {ratio:.2f}x |")
    print(f"1-minute load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
