"""Assist's requests through listend's Wyoming server: exact transcripts, and the latency from
``audio-stop`` to ``transcript`` (what a Home Assistant user waits for after speaking).

    .venv/bin/python bench/wyoming_bench.py [--requests 20] [--fast] [--no-write]

A daemon in this process serves Wyoming against listend.testing's Deepgram-protocol server
(scripted speech, so every transcript must match word for word); the requests are made one
after the other with the ``wyoming`` client library, as Home Assistant does, the audio paced
like a microphone (``--fast``: as fast as the socket takes it). Prints one JSON line; writes
its table between the wyoming_bench markers of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from report import write_section  # noqa: E402

from listend.testing import DeepgramTestServer, Script  # noqa: E402
from tests.support.wyoming import transcribe, wyoming_config, wyoming_daemon  # noqa: E402

MARKERS = ("<!-- wyoming_bench:start -->", "<!-- wyoming_bench:end -->")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: with 20 samples p99 is the slowest, not an extrapolation."""
    ranked = sorted(values)
    return ranked[max(0, min(len(ranked) - 1, round(q / 100 * len(ranked) + 0.5) - 1))]


async def run(requests: int, workdir: Path, *, realtime: bool) -> dict[str, Any]:
    scripts = [Script().generate(2.0, seed=n, words_per_utterance=5) for n in range(requests)]
    latencies, exact = [], 0
    async with DeepgramTestServer() as dg, wyoming_daemon(wyoming_config(workdir, dg)) as daemon:
        port = daemon.wyoming.port
        for script in scripts:
            answer = await transcribe(port, script.pcm(), realtime=realtime)
            exact += answer.text == " ".join(script.words)
            if answer.latency is not None:
                latencies.append(answer.latency * 1000)
    return {
        "requests": requests,
        "exact": exact,
        "realtime": realtime,
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 99), 1) if latencies else None,
        "latencies_ms": [round(x, 1) for x in latencies],
    }


def render(result: dict[str, Any]) -> str:
    pacing = "paced like a microphone" if result["realtime"] else "sent as fast as possible"
    return "\n".join(
        [
            "## Wyoming: Assist requests (bench/wyoming_bench.py)",
            "",
            (
                f"{result['requests']} requests in a row against listend.testing, audio {pacing}, "
                f"on {platform.machine()} / Python {platform.python_version()}."
            ),
            "",
            "| exact transcripts | audio-stop -> transcript p50 | p99 |",
            "|---|---|---|",
            (
                f"| {result['exact']}/{result['requests']} | {result['p50_ms']} ms "
                f"| {result['p99_ms']} ms |"
            ),
            "",
            (
                "Each request ends in silence, as a voice command does, so its last final "
                "is usually in before audio-stop: the latency is the Finalize and close round "
                "trip on loopback plus the daemon's hand-off. Against Deepgram add its network "
                "round trip and finalize time."
            ),
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--fast", action="store_true", help="do not pace the audio")
    parser.add_argument("--no-write", action="store_true", help="leave bench/RESULTS.md alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        result = asyncio.run(run(args.requests, Path(workdir), realtime=not args.fast))
    print(json.dumps(result))
    if not args.no_write:
        write_section(BENCH / "RESULTS.md", render(result), MARKERS)
    return 0 if result["exact"] == result["requests"] else 1


if __name__ == "__main__":
    sys.exit(main())
