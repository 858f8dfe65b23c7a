"""Bytes written under state_dir per hour of healthy streaming (the SD-card wear budget).

    .venv/bin/python bench/spool.py [SECONDS]

Runs ``listend run`` (one real-time ``file`` source, a ``stdout`` sink whose output goes to a
pipe we count, logging at warning) against the Deepgram-protocol test server for SECONDS
(default 60) and extrapolates to an hour. The daemon's write() bytes (``wchar`` in
/proc/PID/io, so it works on tmpfs too) minus what it printed are its writes to files: the
outbox's SQLite WAL and nothing else on a healthy stream. The goal is that the spool
directory gets nothing. A short run extrapolated: the stream's steady state is reached within
a second, and the cost is per final.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from listend.testing import Script, running_server

ROOT = Path(__file__).resolve().parent.parent


def wchar(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("no wchar in /proc/PID/io")


def main(seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, running_server() as dg:
        work = Path(tmp)
        wav = Script().generate(seconds + 5, seed=7).write_wav(work / "speech.wav")
        config = work / "listend.yaml"
        config.write_text(
            f"device: bench\nstate_dir: {work / 'state'}\n"
            f"deepgram: {{url: {dg.url}, api_key: $env:DG_KEY}}\n"
            f"sources: {{hall: {{type: file, path: {wav}, realtime: true}}}}\n"
            "sinks: {out: {type: stdout, format: jsonl}}\n",
            encoding="utf-8",
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "listend", "--log-level", "warning", "run", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "DG_KEY": dg.api_key},
            cwd=ROOT,
        )
        printed = [0, 0]  # bytes, finals

        def count() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                printed[0] += len(line)
                printed[1] += json.loads(line).get("is_final", False)

        reader = threading.Thread(target=count, daemon=True)
        reader.start()
        while not dg.connections:
            time.sleep(0.1)
        start_io, start_out, start_finals = wchar(proc.pid), printed[0], printed[1]
        time.sleep(seconds)  # streaming: what it writes meanwhile is the measurement
        io, out, finals = wchar(proc.pid), printed[0], printed[1]
        spooled = list((work / "state" / "spool").rglob("*.pcm"))
        proc.terminate()
        proc.wait(30)
    files = (io - start_io) - (out - start_out)
    per_hour = 3600 / seconds
    return {
        "seconds": seconds,
        "finals": finals - start_finals,
        "state_dir_bytes_per_hour": files * per_hour,
        "event_json_bytes_per_hour": (out - start_out) * per_hour,
        "spool_files": len(spooled),
    }


if __name__ == "__main__":
    result = main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
    print(json.dumps(result, indent=2))
