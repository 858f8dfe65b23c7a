"""Idle cost of one source: wake-ups per second, CPU per minute, and start-up CPU on its own.

    python bench/idle.py [SECONDS]  ->  its section of bench/RESULTS.md (and stdout)

One real-time stream of silence (a quiet room) against the bench's Deepgram-protocol server
and mosquitto from each client: listend ungated, listend with ``vad: {}`` (the gate stays
closed: only KeepAlive goes out), listend with 200 ms chunks (half the wake-ups) and the
SDK-guide script; and the floor of each design: a bare asyncio loop and a bare thread, each
waking 10 times a second to do nothing. The clients start one after the other (start-up CPU
is each one's CPU time when its stream opened: imports, config, plugins, first connection),
then all are measured over the same SECONDS, so a loaded machine weighs on each alike.
Wake-ups are voluntary context switches (every thread, from /proc: each is a sleep that
ended).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import wave
from pathlib import Path

from common import PYTHON, Services, cpu_seconds, services, start_client, stop, tree
from report import write_section

MARKERS = ("<!-- idle_bench:start -->", "<!-- idle_bench:end -->")
BENCH = Path(__file__).resolve().parent
LISTEND = {  # name -> what the client adds to its source's options
    "listend": "",
    "listend, vad: {} (gate closed)": ", vad: {}",
    "listend, chunk_ms: 200": ", chunk_ms: 200",
}
SCRIPT = "SDK-guide script"
#: what waking at the chunk rate costs before any work is done: the floor of each design
FLOORS = {
    "floor: bare asyncio loop, 10 wake-ups/s": (
        "import asyncio\n\nasync def main():\n    while True:\n        await asyncio.sleep(0.1)\n\n"
        "asyncio.run(main())\n"
    ),
    "floor: bare thread, 10 wake-ups/s": "import time\nwhile True:\n    time.sleep(0.1)\n",
}


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


def measure(svc: Services, wav: Path, workdir: Path, window: float) -> dict[str, dict]:
    procs: dict[str, subprocess.Popen[str]] = {}
    startup: dict[str, float] = {}
    svc.reset()
    try:
        for name, options in [*LISTEND.items(), (SCRIPT, None)]:
            own = workdir / f"idle-{len(procs)}"
            own.mkdir(exist_ok=True)
            side = "baseline" if options is None else "listend"
            client = start_client(side, own, svc, wav, 1, vad=options or "")
            procs[name] = client.proc
            deadline = time.monotonic() + 60
            while len(svc.stats()["connections"]) < len(procs):
                if time.monotonic() > deadline or client.proc.poll() is not None:
                    raise RuntimeError(f"{name}: no connection")
                time.sleep(0.05)
            startup[name] = cpu_seconds(client.proc.pid)
        for name, code in FLOORS.items():
            procs[name] = subprocess.Popen([PYTHON, "-c", code], text=True)
        time.sleep(3)
        before = {name: (cpu_seconds(p.pid), switches(p.pid)) for name, p in procs.items()}
        t0 = time.monotonic()
        time.sleep(window)
        after = {name: (cpu_seconds(p.pid), switches(p.pid)) for name, p in procs.items()}
        elapsed = time.monotonic() - t0
    finally:
        for proc in procs.values():
            stop(proc)
    return {
        name: {
            "startup_cpu_s": startup.get(name),
            "cpu_s_per_minute": (after[name][0] - before[name][0]) * 60 / elapsed,
            "wakeups_per_s": (after[name][1] - before[name][1]) / elapsed,
        }
        for name in procs
    }


def main() -> None:
    window = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    workdir = BENCH / ".work"
    workdir.mkdir(exist_ok=True)
    wav = silence(workdir / "silence.wav", window + 60)
    load = os.getloadavg()[0]
    with services(workdir) as svc:
        runs = measure(svc, wav, workdir, window)
    base = runs[SCRIPT]
    rows = [
        "| client | wake-ups/s | CPU s per minute | / script | goal | start-up CPU, s |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for name, run in runs.items():
        ratio = run["cpu_s_per_minute"] / base["cpu_s_per_minute"]
        goal = "<= 0.5x" if name in LISTEND else ""
        met = "" if not goal else (" yes" if ratio <= 0.5 else " **no**")
        started = "" if run["startup_cpu_s"] is None else f"{run['startup_cpu_s']:.2f}"
        rows.append(
            f"| {name} | {run['wakeups_per_s']:.1f} | {run['cpu_s_per_minute']:.3f} "
            f"| {ratio:.2f}x | {goal}{met} | {started} |"
        )
        print(rows[-1], flush=True)
    section = "\n".join(
        [
            "## Idle cost of one source (bench/idle.py)",
            "",
            (
                f"`bench/idle.py {window:g}`: one real-time stream of silence per client, all "
                f"measured together over the same {window:g} s once every stream was open; "
                "wake-ups are voluntary context switches of all its threads; the floors only "
                "sleep 100 ms at a time. 1-minute load average at the start: "
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
