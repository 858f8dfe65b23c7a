"""Voice-activity gating on a 10-minute room: seconds streamed vs captured, words kept.

    python bench/gating.py [--minutes 10]

The room is a :class:`~listend.testing.spoken.SpokenScript`: espeak-ng utterances (about 10 %
of the time) over quiet noise. listend plays it twice from a file source (as fast as it is
consumed), once without and once with ``vad: {}`` (the defaults), to the benchmark server
running the spoken recognizer: it hears a word only if every sample of it was streamed, and
reports times on the connection's clock, as Deepgram does. So "words kept" measures what the
gate lets through (a word whose onset was cut is lost), not a speech model's accuracy, and
the times show the stream->source mapping. Streamed seconds are what the server received.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from common import SERVICE_CORE, Services, Subscriber, services, start_client

from listend.testing.spoken import SpokenScript

BPS = 32000


@dataclass
class GatingResult:
    minutes: float
    speech_ratio: float  # of the room's duration, from the first to the last word of each utterance
    words: int  # in the script
    words_ungated: int
    words_gated: int
    words_lost: int  # heard ungated, not gated
    max_time_shift_ms: float  # of words heard in both runs
    captured_s: float
    streamed_ungated_s: float
    streamed_gated_s: float
    ratio: float  # streamed_gated / captured
    seconds_ungated: float  # wall time of each run
    seconds_gated: float


def room(minutes: float, path: Path) -> SpokenScript:
    script = SpokenScript(seed=11).generate(minutes * 60, speech_ratio=0.1, seed=11)
    script.save(path)
    return script


def run_once(svc: Services, sub: Subscriber, wav: Path, workdir: Path, vad: str):
    svc.reset()
    sub.take()
    client = start_client("listend", workdir, svc, wav, 1, vad=vad, realtime=False)
    started = time.monotonic()
    try:
        code = client.proc.wait(timeout=600)
    finally:
        client.close()
    elapsed = time.monotonic() - started
    if code != 0:
        raise RuntimeError(f"listend exited {code}: {client.log.read_text()[-2000:]}")
    time.sleep(1.0)
    stats = svc.stats()
    words = [
        (w["word"], w["start"], w["end"])
        for _, event in sorted(sub.take(), key=lambda r: (r[1]["start"], r[0]))
        for w in event.get("words", [])
    ]
    streamed = sum(c["bytes"] for c in stats["connections"]) / BPS
    return words, streamed, elapsed


def measure(minutes: float, workdir: Path) -> GatingResult:
    wav = workdir / "room.wav"
    script = room(minutes, wav)
    with services(workdir, spoken=wav) as svc:
        sub = Subscriber(svc.mqtt_port)
        try:
            ungated, streamed_ungated, t_ungated = run_once(svc, sub, wav, workdir, "")
            gated, streamed_gated, t_gated = run_once(svc, sub, wav, workdir, ", vad: {}")
        finally:
            sub.close()
    reference = {(w, round(s, 2)): (s, e) for w, s, e in ungated}
    shifts = []
    kept = {(w, round(s, 2)) for w, s, _ in gated}
    lost = sum(1 for key in reference if key not in kept)
    for word, start, end in gated:
        ref = reference.get((word, round(start, 2)))
        if ref is not None:
            shifts.append(max(abs(start - ref[0]), abs(end - ref[1])))
    return GatingResult(
        minutes=minutes,
        speech_ratio=script.speech_seconds / script.duration,
        words=len(script.words),
        words_ungated=len(ungated),
        words_gated=len(gated),
        words_lost=lost,
        max_time_shift_ms=1000 * max(shifts, default=float("nan")),
        captured_s=script.duration,
        streamed_ungated_s=streamed_ungated,
        streamed_gated_s=streamed_gated,
        ratio=streamed_gated / script.duration,
        seconds_ungated=t_ungated,
        seconds_gated=t_gated,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10)
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(SERVICE_CORE)})
    workdir = Path(__file__).resolve().parent / ".work"
    workdir.mkdir(exist_ok=True)
    print(json.dumps(asdict(measure(args.minutes, workdir)), indent=2))


if __name__ == "__main__":
    main()
