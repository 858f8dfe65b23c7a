"""Catching up after an outage: how long the backlog takes to reach Deepgram after a reconnect.

    python bench/catchup.py [--outage 30] [--speeds 10,0,1.25] [--workdir DIR]

``listend run`` with every setting at its default (but ``deepgram.catchup_speed`` for each run)
streams a real-time ``file`` source to listend.testing's server, which drops the stream after
5 s and then refuses every handshake for ``--outage`` seconds. The session reconnects when its
backoff says (the backlog is then the outage plus the last backoff wait), replays what no final
covered, and has caught up once the server has received everything captured up to now (within
one 100 ms chunk). Reported per run: the backlog at the reconnect and the seconds from the
reconnect to caught up (``null``: not within ``--give-up`` seconds; 1.25x, the former fixed
replay speed, needs four times the backlog). One JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from common import PYTHON, ROOT, stop

from listend.testing import Script, running_server
from listend.testing.server import ThreadedDeepgramTestServer

BPS = 32000
DROP_AFTER = 5.0  # seconds of audio on the first connection
CHUNK = 0.1  # the file source's chunk: "caught up" allows one
REPLAYING = re.compile(r"replaying ([0-9.]+)s from ([0-9.]+)s")


@dataclass
class CatchUp:
    catchup_speed: float
    outage_s: float  # the server refused handshakes this long after the drop
    backlog_s: float  # what the reconnecting connection started with
    reconnect_after_s: float  # from the drop to the accepted handshake
    caught_up_s: float | None  # from the reconnect until the server had everything captured
    words_delivered: int  # until the stop right after the catch-up
    each_word_once: bool  # the delivered words are the script's first ones, in order


def _config(workdir: Path, url: str, wav: Path, speed: float) -> Path:
    config = workdir / f"catchup-{speed:g}.yaml"
    config.write_text(
        f"""\
device: bench
state_dir: {workdir / f"state-{speed:g}"}
deepgram:
  url: {url}
  api_key: $env:DG_BENCH_KEY
  catchup_speed: {speed:g}
sources:
  hall: {{type: file, path: {wav}}}
sinks:
  out: {{type: stdout, format: jsonl}}
""",
        encoding="utf-8",
    )
    return config


def _wait(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Outage(threading.Thread):
    """Once the first connection dropped: refuse every handshake for ``seconds``."""

    def __init__(self, dg: ThreadedDeepgramTestServer, seconds: float) -> None:
        super().__init__(name="outage", daemon=True)
        self.dg = dg
        self.seconds = seconds
        self.dropped_at = 0.0

    def run(self) -> None:
        dg = self.dg
        _wait(lambda: dg.connections and dg.connections[0].close_code, 60, "the drop")
        self.dropped_at = time.monotonic()
        time.sleep(self.seconds)
        dg.faults.clear()


def measure(workdir: Path, script: Script, outage: float, speed: float, give_up: float) -> CatchUp:
    wav = script.write_wav(workdir / "speech.wav")
    log = workdir / f"catchup-{speed:g}.log"
    with running_server() as dg:
        dg.faults.drop(after_bytes=int(DROP_AFTER * BPS), code=1011).refuse(100_000)
        restorer = Outage(dg, outage)
        restorer.start()
        env = {**os.environ, "DG_BENCH_KEY": dg.api_key}
        argv = [PYTHON, "-m", "listend", "run", str(_config(workdir, dg.url, wav, speed))]
        with log.open("w") as err, (workdir / f"catchup-{speed:g}.jsonl").open("w") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=ROOT, text=True)
        try:
            _wait(lambda: len(dg.connections) >= 2, outage + 90, "the reconnect")
            restorer.join()
            second = dg.connections[1]
            _wait(lambda: REPLAYING.search(log.read_text()), 10, "the reconnect's log line")
            match = REPLAYING.search(log.read_text())
            assert match is not None
            backlog = float(match.group(1))
            caught_up = None
            while (waited := time.monotonic() - second.opened_at) < give_up:
                if second.bytes_received / BPS >= backlog + waited - CHUNK:
                    caught_up = waited
                    break
                time.sleep(0.005)
        finally:
            stop(proc)  # SIGTERM: the drain flushes what was captured
        reconnect_after = second.opened_at - restorer.dropped_at
    lines = (workdir / f"catchup-{speed:g}.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    words = [w["word"] for e in events if e.get("is_final") for w in e.get("words", [])]
    return CatchUp(
        catchup_speed=speed,
        outage_s=outage,
        backlog_s=backlog,
        reconnect_after_s=round(reconnect_after, 2),
        caught_up_s=None if caught_up is None else round(caught_up, 2),
        words_delivered=len(words),
        each_word_once=words[:-1] == script.words[: len(words) - 1],  # the last: cut by the stop
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=30.0)
    parser.add_argument("--speeds", default="10,0", help="catchup_speed values (10: shipped)")
    parser.add_argument("--give-up", type=float, default=30.0)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="listend-catchup-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # enough speech for the outage, the worst backoff after it (30 s) and the catch-up
    script = Script().generate(DROP_AFTER + args.outage + 30 + args.give_up, seed=3)
    for speed in (float(s) for s in args.speeds.split(",")):
        result = measure(workdir, script, args.outage, speed, args.give_up)
        print(json.dumps(asdict(result)), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
