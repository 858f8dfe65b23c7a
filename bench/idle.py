"""Idle cost of one source: wake-ups per second, CPU per minute, and start-up CPU on its own.

    python bench/idle.py [SECONDS]  ->  its section of bench/RESULTS.md (and stdout)

One real-time stream of silence (a quiet room) against the bench's Deepgram-protocol server
and mosquitto, three clients one after the other: listend ungated, listend with ``vad: {}``
(the gate stays closed: only KeepAlive goes out) and the SDK-guide script. Wake-ups are the
client's voluntary context switches (every thread, from /proc: each is a sleep that ended),
counted over SECONDS from 3 s after the stream opened; start-up CPU is the process's CPU
time when the stream opened (imports, config, plugins, first connection).
"""

from __future__ import annotations

import os
import sys
import time
import wave
from pathlib import Path

from common import Services, cpu_seconds, services, start_client, tree
from report import write_section

MARKERS = ("<!-- idle_bench:start -->", "<!-- idle_bench:end -->")
BENCH = Path(__file__).resolve().parent


def switches(pid: int) -> int:
    """Voluntary context switches of every thread of the process tree so far."""
    total = 0
    for proc in tree(pid):
        for task in Path(f"/proc/{proc}/task").iterdir():
            try:
                for line in (task / "status").read_text().splitlines():
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
            except OSError:
                pass  # a thread that ended meanwhile
    return total


def silence(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\0" * int(32000 * seconds))
    return path


def measure(side: str, svc: Services, wav: Path, workdir: Path, window: float, vad: str):
    svc.reset()
    client = start_client(side, workdir, svc, wav, 1, vad=vad)
    try:
        deadline = time.monotonic() + 60
        while not svc.stats()["connections"]:
            if time.monotonic() > deadline or client.proc.poll() is not None:
                raise RuntimeError(f"{side}: no connection")
            time.sleep(0.05)
        startup = cpu_seconds(client.proc.pid)
        time.sleep(3)
        cpu0, woke0, t0 = cpu_seconds(client.proc.pid), switches(client.proc.pid), time.monotonic()
        time.sleep(window)
        cpu1, woke1, t1 = cpu_seconds(client.proc.pid), switches(client.proc.pid), time.monotonic()
    finally:
        client.close()
    return {
        "startup_cpu_s": startup,
        "cpu_s_per_minute": (cpu1 - cpu0) * 60 / (t1 - t0),
        "wakeups_per_s": (woke1 - woke0) / (t1 - t0),
    }


def main() -> None:
    window = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    workdir = BENCH / ".work"
    workdir.mkdir(exist_ok=True)
    wav = silence(workdir / "silence.wav", window + 20)
    load = os.getloadavg()[0]
    runs = {}
    with services(workdir) as svc:
        runs["listend"] = measure("listend", svc, wav, workdir, window, "")
        runs["listend, vad: {} (gate closed)"] = measure(
            "listend", svc, wav, workdir, window, ", vad: {}"
        )
        runs["SDK-guide script"] = measure("baseline", svc, wav, workdir, window, "")
    base = runs["SDK-guide script"]
    rows = [
        "| client | wake-ups/s | CPU s per minute | / script | goal | start-up CPU, s |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for name, run in runs.items():
        ratio = run["cpu_s_per_minute"] / base["cpu_s_per_minute"]
        goal = "" if name == "SDK-guide script" else "<= 0.5x"
        met = "" if not goal else (" yes" if ratio <= 0.5 else " **no**")
        rows.append(
            f"| {name} | {run['wakeups_per_s']:.1f} | {run['cpu_s_per_minute']:.3f} "
            f"| {ratio:.2f}x | {goal}{met} | {run['startup_cpu_s']:.2f} |"
        )
        print(rows[-1], flush=True)
    section = "\n".join(
        [
            "## Idle cost of one source (bench/idle.py)",
            "",
            (
                f"`bench/idle.py {window:g}`: one real-time stream of silence, {window:g} s "
                "measured per client after it connected; wake-ups are voluntary context "
                "switches of all its threads. 1-minute load average at the start: "
                f"{load:.1f} on {os.cpu_count()} cores (other jobs running: CPU figures are "
                "noisy, the wake-up counts much less so)."
            ),
            "",
            *rows,
        ]
    )
    write_section(BENCH / "RESULTS.md", section, MARKERS)


if __name__ == "__main__":
    main()
