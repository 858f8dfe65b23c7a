"""Profile the daemon under N real-time streams: py-spy samples it while every stream is live.

    python bench/profile_daemon.py [STREAMS] [SECONDS]  ->  bench/.work/profile-N.txt

The output lists functions by their share of samples (own time and with callees), which is
how the hot spots fixed in the daemon were found (see the commit messages).
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time
from pathlib import Path

from common import SERVICE_CORE, Subscriber, services, start_client
from streams import write_audio


def main() -> None:
    streams = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 30
    os.sched_setaffinity(0, {int(SERVICE_CORE)})
    workdir = Path(__file__).resolve().parent / ".work"
    workdir.mkdir(exist_ok=True)
    wav, seconds = write_audio(workdir / "speech", seconds, streams)
    raw = workdir / f"profile-{streams}.collapsed"
    with services(workdir) as svc:
        subscriber = Subscriber(svc.mqtt_port)
        client = start_client("listend", workdir, svc, wav, streams)
        try:
            while len(svc.stats()["connections"]) < streams:
                time.sleep(0.2)
            spy = Path(sys.executable).parent / "py-spy"
            subprocess.run(
                [str(spy), "record", "--pid", str(client.proc.pid), "--duration",
                 str(int(seconds - 8)), "--format", "raw", "--output", str(raw), "--nonblocking",
                 "--rate", os.environ.get("SPY_RATE", "200"), "--gil"],
                check=True, capture_output=True, timeout=seconds + 60,
            )  # fmt: skip
            client.proc.wait(timeout=seconds + 60)
        finally:
            client.close()
            subscriber.close()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    out = workdir / f"profile-{streams}.txt"
    with out.open("w") as f:
        f.write(f"{total} samples\n\n== own time\n")
        for frame, n in own.most_common(40):
            f.write(f"{100 * n / total:5.1f}%  {frame}\n")
        f.write("\n== with callees\n")
        for frame, n in inclusive.most_common(80):
            f.write(f"{100 * n / total:5.1f}%  {frame}\n")
    print(out)


if __name__ == "__main__":
    main()
