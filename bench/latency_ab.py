"""final -> MQTT latency, two listend trees alternately in one run (A/B on a shared machine).

    python bench/latency_ab.py --a REV --b REV [--baseline] [--streams 1,32,128] [--rounds 2]

Each side is ``git archive REV`` of this repository unpacked to a temporary directory and put
first on ``PYTHONPATH`` (same interpreter and dependencies; ``PYTHONSAFEPATH`` keeps the
client's working directory, this checkout, off ``sys.path``), so a tree being edited is never
measured half-way. ``--baseline`` adds the SDK-guide script as a third side. Per stream count
the sides take turns (A B S, then B S A, ...) against the same server and mosquitto as
``bench/streams.py``; each run prints one JSON line, and the summary gives each side's median
over rounds of p50 and p99, with the ratios and the 1-minute load.
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
    parser.add_argument("--baseline", action="store_true", help="the SDK script as well")
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
    sides = ["a", "b", "s"] if args.baseline else ["a", "b"]
    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, services(workdir) as svc:
        trees = {
            side: unpack(rev, Path(tmp) / side) for side, rev in (("a", args.a), ("b", args.b))
        }
        subscriber = Subscriber(svc.mqtt_port)
        try:
            for count in counts:
                for round_ in range(args.rounds):
                    turn = round_ % len(sides)
                    for side in sides[turn:] + sides[:turn]:
                        client = "baseline" if side == "s" else "listend"
                        if side in trees:
                            os.environ["PYTHONPATH"] = str(trees[side])
                        else:
                            os.environ.pop("PYTHONPATH", None)
                        run = measure(client, svc, subscriber, wav, duration, count, workdir)
                        results.setdefault((side, count), []).append(
                            (run.latency_p50_ms, run.latency_p99_ms)
                        )
                        line = {"tree": side, "round": round_, "load1": os.getloadavg()[0]}
                        print(json.dumps({**line, **run.__dict__}), flush=True)
        finally:
            subscriber.close()
            os.environ.pop("PYTHONPATH", None)
    print(f"\na = {args.a}, b = {args.b}, s = the SDK script; median of {args.rounds} round(s)")
    heads = " | ".join(f"{x} p50 ms | {x} p99 ms" for x in sides)
    print(f"| streams | {heads} | p99 ratios |")
    print("|---:|" + "---:|" * (2 * len(sides) + 1))
    for count in counts:
        cells, p99 = [], {}
        for side in sides:
            p50s, p99s = zip(*results[(side, count)], strict=True)
            p99[side] = statistics.median(p99s)
            cells += [f"{statistics.median(p50s):.1f}", f"{p99[side]:.1f}"]
        ratios = [f"b/a {p99['b'] / p99['a']:.2f}x"]
        if "s" in p99:
            ratios.append(f"b/s {p99['b'] / p99['s']:.2f}x")
        print(f"| {count} | " + " | ".join(cells) + f" | {', '.join(ratios)} |")
    print(f"1-minute load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
