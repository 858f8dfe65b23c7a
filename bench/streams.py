"""listend against the SDK-guide baseline: CPU, memory, latency and one-core capacity.

    python bench/streams.py [--streams 1,32] [--seconds 30] [--side listend|baseline|both]

Each run starts one client (``listend run`` with N file sources and an mqtt sink, or the
baseline script with N threads), both streaming the same WAV in real time to the same server
process and publishing finals to the same mosquitto. Measured on the client's process tree
from /proc while every stream is live (from 2 s after the last connection opened until 2 s
before the first one's audio ends): CPU seconds, peak RSS; from the server's and the MQTT
subscriber's CLOCK_MONOTONIC stamps: each final's latency from the server sending it to the
subscriber receiving it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common import (
    SERVICE_CORE,
    Services,
    Subscriber,
    cpu_seconds,
    percentile,
    rss_bytes,
    services,
    start_client,
    threads_of,
)

BPS = 32000
#: Keeping pace: no stream's audio trails real time at the server by more than this many
#: seconds, and finals reach MQTT within it (median).
LAG_LIMIT = 1.0


@dataclass
class Run:
    side: str
    streams: int
    pinned: bool
    cpu_per_stream_minute: float
    cpu_share: float  # of one core, during the window
    rss_mb: float
    threads: int
    latency_p50_ms: float
    latency_p99_ms: float
    finals: int
    max_lag_s: float
    kept_pace: bool
    first_connection_s: float
    ready_s: float | None
    server_cpu_share: float
    exit_code: int | None


class RunError(RuntimeError):
    pass


def measure(
    side: str,
    svc: Services,
    subscriber: Subscriber,
    wav: Path,
    audio_seconds: float,
    streams: int,
    workdir: Path,
    *,
    core: str | None = None,
) -> Run:
    svc.reset()
    subscriber.take()
    client = start_client(side, workdir, svc, wav, streams, core=core)
    try:
        return _measure(client, svc, subscriber, audio_seconds, streams, core)
    finally:
        client.close()


def _measure(client, svc, subscriber, audio_seconds, streams, core) -> Run:
    deadline = client.launched + 60 + 0.25 * streams
    while True:
        client.poll_ready()
        stats = svc.stats()
        if len(stats["connections"]) >= streams:
            break
        if client.proc.poll() is not None:
            raise RunError(f"{client.side} exited early: {client.log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise RunError(f"{client.side}: only {len(stats['connections'])}/{streams} opened")
        time.sleep(0.2)
    opened = [c["opened_at"] for c in stats["connections"]]
    t0 = max(opened) + 2.0
    t1 = min(opened) + audio_seconds - 2.0
    if t1 - t0 < 5:
        raise RunError(f"{client.side}: connections took too long to open for a window")
    _sleep_until(t0, client)
    cpu0, server0 = cpu_seconds(client.proc.pid), svc.stats()["cpu"]
    started = time.monotonic()
    rss, threads = 0, 0
    while time.monotonic() < t1:
        rss = max(rss, rss_bytes(client.proc.pid))
        threads = max(threads, threads_of(client.proc.pid))
        client.poll_ready()
        time.sleep(min(1.0, max(0.0, t1 - time.monotonic())))
    cpu1 = cpu_seconds(client.proc.pid)
    stats = svc.stats()
    window = time.monotonic() - started
    lags = [
        (stats["now"] - c["opened_at"]) - c["bytes"] / BPS
        for c in stats["connections"]
        if not c["closed"]
    ]
    try:
        code = client.proc.wait(timeout=audio_seconds + 90)
    except Exception:
        code = None
    stats = svc.stats()
    time.sleep(0.5)
    received = {
        (m.get("request_id"), round(m.get("start", -1.0), 3)): at for at, m in subscriber.take()
    }
    latencies = [
        received[(rid, start)] - sent
        for rid, start, sent in stats["finals"]
        if t0 <= sent <= t1 and (rid, start) in received
    ]
    first = min(opened) - client.launched
    ready = None if client.ready_at is None else client.ready_at - client.launched
    max_lag = max(lags, default=float("inf"))
    return Run(
        side=client.side,
        streams=streams,
        pinned=core is not None,
        cpu_per_stream_minute=(cpu1 - cpu0) / (streams * window / 60),
        cpu_share=(cpu1 - cpu0) / window,
        rss_mb=rss / 2**20,
        threads=threads,
        latency_p50_ms=1000 * percentile(latencies, 50),
        latency_p99_ms=1000 * percentile(latencies, 99),
        finals=len(latencies),
        max_lag_s=max_lag,
        kept_pace=(
            max_lag <= LAG_LIMIT and len(lags) == streams and percentile(latencies, 50) <= LAG_LIMIT
        ),
        first_connection_s=first,
        ready_s=ready,
        server_cpu_share=(stats["cpu"] - server0) / window,
        exit_code=code,
    )


def _sleep_until(when: float, client: Any) -> None:
    while (left := when - time.monotonic()) > 0:
        client.poll_ready()
        time.sleep(min(0.2, left))


def write_audio(directory: Path, seconds: float, count: int) -> tuple[Path, float]:
    """``count`` different scripts of ``seconds`` each (so finals do not all come at once, as
    they would from one recording played ``count`` times in step); returns the directory."""
    from listend.testing import Script  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.wav"):
        old.unlink()
    for index in range(count):
        script = Script().generate(seconds, seed=index)
        script.silence(max(0.0, seconds + 1 - script.duration))
        script.write_wav(directory / f"{index:03d}.wav")
    return directory, seconds + 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", default="1,32")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--side", default="both")
    parser.add_argument("--pin", action="store_true", help="pin the client to core 0")
    parser.add_argument("--workdir", type=Path, default=Path(__file__).resolve().parent / ".work")
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(SERVICE_CORE)})
    workdir = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    wav, duration = write_audio(
        workdir / "speech", args.seconds, max(int(c) for c in args.streams.split(","))
    )
    sides = ["listend", "baseline"] if args.side == "both" else [args.side]
    with services(workdir) as svc:
        subscriber = Subscriber(svc.mqtt_port)
        try:
            for count in (int(c) for c in args.streams.split(",")):
                for side in sides:
                    run = measure(
                        side,
                        svc,
                        subscriber,
                        wav,
                        duration,
                        count,
                        workdir,
                        core="0" if args.pin else None,
                    )
                    print(json.dumps(asdict(run)), flush=True)
        finally:
            subscriber.close()


if __name__ == "__main__":
    main()
