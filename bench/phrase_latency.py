"""Phrase trigger latency: end of the phrase's last word -> the `phrase` event at MQTT.

    .venv/bin/python bench/phrase_latency.py [--streams 1,32] [--seconds 40]

``listend run`` with N real-time `file` sources (scripted speech in which every third
utterance says "call the front desk") and an `mqtt` sink receiving `phrase`, against the
benchmarks' Deepgram-protocol server (interim results on) and mosquitto (bench/common.py).
A subscriber stamps each `detected` event as it arrives; its latency is that time minus the
event's `at`, the wall time of the phrase's last word in the source (the source started
`wall_start` = when the daemon began reading the file, which a real-time file source then
plays at the pace of a microphone, handing on each chunk when it begins: audio arrives up to
one chunk early, so small chunks, 20 ms by default, keep that error small).
Goal: p99 under 0.5 s at 1 and 32 streams.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from common import API_KEY, PYTHON, ROOT, percentile, services, stop

from listend.testing import Script
from listend.testing.scripted import WORDS

PHRASE = "call the front desk"
BPS = 32000


def write_audio(directory: Path, seconds: float, streams: int) -> int:
    """One script per stream; returns how many phrases they say in all."""
    said = 0
    for index in range(streams):
        script, n = Script(), 0
        while script.duration < seconds:
            words = [WORDS[(index * 7 + n * 3 + k) % len(WORDS)] for k in range(4)]
            script.say(PHRASE if n % 3 == 2 else " ".join(words))
            n += 1
        said += n // 3
        script.write_wav(directory / f"{index:03d}.wav")
    return said


def config(workdir: Path, url: str, mqtt_port: int, streams: int, chunk_ms: int) -> Path:
    sources = "".join(
        f"  s{i:03d}: {{type: file, path: {workdir / f'{i:03d}.wav'}, chunk_ms: {chunk_ms}}}\n"
        for i in range(streams)
    )
    path = workdir / "listend.yaml"
    path.write_text(
        f"""\
device: bench
state_dir: {workdir / "state"}
deepgram:
  url: {url}
  api_key: $env:DG_BENCH_KEY
  options: {{model: nova-3, interim_results: true, endpointing: 300}}
triggers:
  desk: {{phrases: ["{PHRASE}"]}}
sources:
{sources}sinks:
  broker: {{type: mqtt, host: 127.0.0.1, port: {mqtt_port}, qos: 1, receive: [final, phrase]}}
log:
  level: warning
""",
        encoding="utf-8",
    )
    return path


class PhraseSubscriber:
    def __init__(self, port: int) -> None:
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-phrases")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("listend/+/+/transcript/phrase/+", 1)
        self.client.loop_start()

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        now = time.time()
        event = json.loads(message.payload)
        with self._lock:
            self.statuses[event["status"]] = self.statuses.get(event["status"], 0) + 1
            if event["status"] == "detected":
                self.latencies.append(now - datetime.fromisoformat(event["at"]).timestamp())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run(streams: int, seconds: float, chunk_ms: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, services(Path(tmp)) as svc:
        work = Path(tmp)
        expected = write_audio(work, seconds, streams)
        path = config(work, svc.url, svc.mqtt_port, streams, chunk_ms)
        subscriber = PhraseSubscriber(svc.mqtt_port)
        env = {**os.environ, "DG_BENCH_KEY": API_KEY}
        proc = subprocess.Popen(
            [PYTHON, "-m", "listend", "run", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
        )
        lag = 0.0  # how far the audio at the server trails real time, at worst
        try:
            while proc.poll() is None:  # every source ends with its file
                time.sleep(2)
                stats = svc.stats()
                live = [c for c in stats["connections"] if not c["closed"]]
                if live and stats["now"] - min(c["opened_at"] for c in live) > 3:
                    lag = max(
                        lag, *((stats["now"] - c["opened_at"]) - c["bytes"] / BPS for c in live)
                    )
        finally:
            stop(proc)
            time.sleep(0.5)
            subscriber.close()
        lat = subscriber.latencies
        return {
            "streams": streams,
            "phrases_said": expected,
            "detected": len(lat),
            "statuses": subscriber.statuses,
            "p50_ms": round(1000 * percentile(lat, 50), 1),
            "p99_ms": round(1000 * percentile(lat, 99), 1),
            "max_ms": round(1000 * max(lat, default=float("nan")), 1),
            "server_audio_lag_ms": round(1000 * lag, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", default="1,32")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument(
        "--chunk-ms",
        type=int,
        default=20,
        help="the file sources' chunks (audio arrives early by up to one)",
    )
    args = parser.parse_args()
    results = [run(int(n), args.seconds, args.chunk_ms) for n in args.streams.split(",")]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
