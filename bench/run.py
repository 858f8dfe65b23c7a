"""``make bench``: listend against the SDK-guide baseline, and the gating scenario, in one run.

    python bench/run.py [--quick]   ->  its section of bench/RESULTS.md, bench/streams-results.json

One Deepgram-protocol server process (``bench/dgserver.py``, scripted recognizer) and one
mosquitto, both pinned to core 1 with this harness, serve both sides. For 1, 32 and 128
concurrent real-time streams each side runs once (see ``bench/streams.py`` for what is
measured); then the most streams one core sustains, the client pinned to core 0 with
``taskset``; then start-up time; then ``bench/gating.py``. ``--quick`` is a smoke run of the
harness (seconds, not minutes): its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gating
from common import CLIENT_CORE, SERVICE_CORE, Subscriber, services
from report import render, write_section
from streams import Run, RunError, measure, write_audio

BENCH = Path(__file__).resolve().parent
COUNTS = (1, 32, 128)


def capacity(
    side: str, svc, sub, audio: Path, seconds: float, workdir: Path, first: int, most: int
):
    """Most streams the client keeps in real time on one core: double until it falls
    behind, then bisect twice (to a multiple of 16)."""
    runs: list[Run] = []

    def kept(count: int) -> bool:
        try:
            run = measure(side, svc, sub, audio, seconds, count, workdir, core=CLIENT_CORE)
        except RunError as exc:
            print(f"  {side} x{count}: failed: {exc}", flush=True)
            return False
        runs.append(run)
        print(f"  {side} x{count} on one core: {_brief(run)}", flush=True)
        return run.kept_pace

    good, bad = 0, None
    count = first
    while bad is None and count <= most:
        if kept(count):
            good, count = count, count * 2
        else:
            bad = count
    for _ in range(2):
        if bad is None or bad - good <= 16:
            break
        middle = (good + bad) // 2 // 16 * 16
        if kept(middle):
            good = middle
        else:
            bad = middle
    return good, bad, runs


def _brief(run: Run) -> str:
    return (
        f"cpu {run.cpu_per_stream_minute:.3f} s/stream-min ({run.cpu_share:.0%} of a core), "
        f"rss {run.rss_mb:.0f} MB, p50/p99 {run.latency_p50_ms:.1f}/{run.latency_p99_ms:.1f} ms, "
        f"lag {run.max_lag_s:.2f} s, server {run.server_cpu_share:.0%}"
    )


def startup(svc, audio: Path, workdir: Path, repeats: int = 3) -> dict[str, Any]:
    """Launch -> READY=1 (sd_notify) for listend when it sends one, and launch -> first
    connection at the server for both sides; medians of ``repeats`` one-stream starts."""
    from common import start_client  # noqa: PLC0415

    result: dict[str, Any] = {}
    for side in ("listend", "baseline"):
        firsts, readies = [], []
        for _ in range(repeats):
            svc.reset()
            client = start_client(side, workdir, svc, audio, 1)
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    client.poll_ready()
                    if conns := svc.stats()["connections"]:
                        firsts.append(conns[0]["opened_at"] - client.launched)
                        break
                    time.sleep(0.02)
                deadline = time.monotonic() + 3  # READY=1 may come a moment after it
                while client.notify is not None and client.ready_at is None:
                    client.poll_ready()
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
                if client.ready_at is not None:
                    readies.append(client.ready_at - client.launched)
            finally:
                client.close()
        result[side] = {
            "first_connection_s": sorted(firsts)[len(firsts) // 2] if firsts else None,
            "ready_s": sorted(readies)[len(readies) // 2] if readies else None,
        }
    return result


def versions() -> dict[str, str]:
    from importlib.metadata import version  # noqa: PLC0415

    out = {"python": platform.python_version(), "kernel": platform.release()}
    for dist in ("listend", "deepgram-sdk", "websockets", "paho-mqtt", "aiohttp", "pydantic"):
        out[dist] = version(dist)
    mosquitto = subprocess.run(
        ["mosquitto", "-h"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    out["mosquitto"] = mosquitto[0].split()[-1] if mosquitto else "?"
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    out["cpu"] = f"{cpu}, {os.cpu_count()} cores"
    mem = Path("/proc/meminfo").read_text().split()[1]
    out["memory"] = f"{int(mem) / 2**20:.0f} GiB"
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny and fast")
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(SERVICE_CORE)})
    workdir = BENCH / ".work"
    workdir.mkdir(exist_ok=True)
    seconds = 10 if args.quick else 30
    counts = (1, 2) if args.quick else COUNTS
    cap_seconds, cap_first, cap_most = (10, 4, 4) if args.quick else (18, 128, 1024)
    started = time.monotonic()
    audio, duration = write_audio(workdir / "speech", seconds, max(counts))
    cap_audio, cap_duration = write_audio(workdir / "capacity", cap_seconds, 32)
    results: dict[str, Any] = {"versions": versions(), "quick": args.quick, "seconds": duration}
    with services(workdir) as svc:
        sub = Subscriber(svc.mqtt_port)
        try:
            runs = []
            for count in counts:
                for side in ("listend", "baseline"):
                    run = measure(side, svc, sub, audio, duration, count, workdir)
                    print(f"{side} x{count}: {_brief(run)}", flush=True)
                    runs.append(run)
            results["runs"] = [asdict(r) for r in runs]
            results["capacity"] = {}
            for side in ("listend", "baseline"):
                good, bad, cap_runs = capacity(
                    side, svc, sub, cap_audio, cap_duration, workdir, cap_first, cap_most
                )
                results["capacity"][side] = {
                    "streams": good,
                    "failed_at": bad,
                    "runs": [asdict(r) for r in cap_runs],
                }
            results["startup"] = startup(svc, audio, workdir)
        finally:
            sub.close()
    gate = gating.measure(0.25 if args.quick else 10, workdir)
    results["gating"] = asdict(gate)
    results["elapsed_s"] = time.monotonic() - started
    out = workdir if args.quick else BENCH  # a smoke run never replaces the real results
    (out / "streams-results.json").write_text(json.dumps(results, indent=2) + "\n")
    target = out / "RESULTS.md"
    write_section(target, render(results))
    print(f"wrote {target} in {results['elapsed_s']:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
