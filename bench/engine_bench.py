"""The local engine measured through the Deepgram SDK, as the daemon uses it.

    .venv/bin/python bench/engine_bench.py [--no-write]

- accuracy and speed: the fixed utterances of bench/corpus.py (espeak-ng, deterministic) in one
  stream with 1.2 s pauses, sent as fast as the engine takes them: word error rate (WER) and
  real-time factor (RTF = processing time / audio time), without and with ``keyterm`` boosting
  of the corpus's phrases (also: how many boosted phrases were heard, and how many were
  inserted where nobody said them);
- latency: a stream paced in real time; the time from the last sample of speech leaving the
  client to the utterance's final (``speech_final``) arriving;
- memory: the worker process's peak RSS.

Writes its table between the engine_bench markers of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
import wave
from array import array
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deepgram import AsyncDeepgramClient
from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1.types import ListenV1Metadata, ListenV1Results

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.corpus import KEYTERMS, SENTENCES  # noqa: E402
from listend.engine.server import LocalEngine  # noqa: E402
from tests.support.evaluation import normalize, synthesize, word_error_rate  # noqa: E402

RATE = 16000
GAP = 1.2
CHUNK = 3200  # 100 ms
LATENCY_SENTENCES = 10
RESULTS = ROOT / "bench" / "RESULTS.md"
START, END = "<!-- engine_bench:start -->", "<!-- engine_bench:end -->"


def clips(folder: Path) -> list[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for index, sentence in enumerate(SENTENCES):
        path = folder / f"{index:02d}.wav"
        if not path.exists():
            synthesize(sentence, path)
        with wave.open(str(path)) as wav:
            out.append(wav.readframes(wav.getnframes()))
    return out


def speech_end(pcm: bytes, threshold: int = 300) -> int:
    """Byte offset just after the last sample louder than ``threshold`` (espeak pads silence)."""
    samples = array("h", pcm)
    for index in range(len(samples) - 1, -1, -1):
        if abs(samples[index]) > threshold:
            return 2 * (index + 1)
    return 0


def silence(seconds: float) -> bytes:
    return b"\x00\x00" * int(RATE * seconds)


def client(engine: LocalEngine) -> AsyncDeepgramClient:
    url = engine.url
    ws = url.replace("http://", "ws://")
    env = DeepgramClientEnvironment(base=url, production=ws, agent=ws, agent_rest=url)
    return AsyncDeepgramClient(api_key=engine.token, environment=env)


async def stream(
    engine: LocalEngine,
    pcm: bytes,
    *,
    realtime: bool,
    marks: list[int] | None = None,
    **options: Any,
) -> tuple[list[tuple[float, ListenV1Results]], dict[int, float], float]:
    """Send ``pcm``; return (arrival time, final) pairs, send times of ``marks``, wall time."""
    sent_at: dict[int, float] = {}
    finals: list[tuple[float, ListenV1Results]] = []
    marks = sorted(marks or [])
    async with client(engine).listen.v1.connect(
        model="general", encoding="linear16", sample_rate=RATE, endpointing=300, **options
    ) as sock:

        async def receive() -> None:
            async for message in sock:
                if isinstance(message, ListenV1Results) and message.is_final:
                    finals.append((time.monotonic(), message))
                if isinstance(message, ListenV1Metadata):
                    return

        receiver = asyncio.create_task(receive())
        started = time.monotonic()
        for offset in range(0, len(pcm), CHUNK):
            if realtime:
                await asyncio.sleep(max(0.0, started + offset / 2 / RATE - time.monotonic()))
            await sock.send_media(pcm[offset : offset + CHUNK])
            now = time.monotonic()
            while marks and marks[0] <= offset + CHUNK:
                sent_at[marks.pop(0)] = now
        await sock.send_finalize()
        await sock.send_close_stream()
        await asyncio.wait_for(receiver, 120)
        wall = time.monotonic() - started
    return finals, sent_at, wall


def texts(finals: list[tuple[float, ListenV1Results]]) -> list[str]:
    return [
        m.channel.alternatives[0].transcript
        for _t, m in finals
        if m.channel.alternatives and m.channel.alternatives[0].transcript
    ]


def contains(text: str, phrase: str) -> bool:
    return f" {' '.join(normalize(phrase))} " in f" {' '.join(normalize(text))} "


async def accuracy(engine: LocalEngine, audio: list[bytes]) -> list[dict[str, Any]]:
    pcm = silence(GAP) + b"".join(clip + silence(GAP) for clip in audio)
    seconds = len(pcm) / 2 / RATE
    reference = " ".join(SENTENCES)
    rows = []
    await stream(engine, pcm, realtime=False)  # warm the decoder's cepstral mean first
    runs: list[tuple[str, dict[str, Any]]] = [
        ("no keywords", {}),
        (f"keyterm: {len(KEYTERMS)} phrases", {"keyterm": list(KEYTERMS)}),
    ]
    for label, options in runs:
        finals, _sent, wall = await stream(engine, pcm, realtime=False, **options)
        heard = " ".join(texts(finals))
        by_sentence = [(s, t) for s, t in zip(SENTENCES, texts(finals), strict=False)]
        present = [(k, s) for k in KEYTERMS for s in SENTENCES if contains(s, k)]
        found = sum(
            1 for k, s in present for ref, hyp in by_sentence if ref == s and contains(hyp, k)
        )
        inserted = sum(
            1
            for k in KEYTERMS
            for ref, hyp in by_sentence
            if contains(hyp, k) and not contains(ref, k)
        )
        rows.append(
            {
                "run": label,
                "wer": word_error_rate([(reference, heard)]),
                "rtf": wall / seconds,
                "keyterms": f"{found}/{len(present)}",
                "inserted": inserted,
                "audio": seconds,
            }
        )
    return rows


async def latency(engine: LocalEngine, audio: list[bytes]) -> dict[str, float]:
    pcm = silence(0.5)
    ends = []
    for clip in audio[:LATENCY_SENTENCES]:
        ends.append(len(pcm) + speech_end(clip))
        pcm += clip + silence(GAP)
    finals, sent_at, _wall = await stream(engine, pcm, realtime=True, marks=ends)
    delays = []
    for end in ends:
        end_seconds = end / 2 / RATE
        arrival = next(
            (t for t, m in finals if m.speech_final and m.start + m.duration >= end_seconds - 0.5),
            None,
        )
        if arrival is not None:
            delays.append(arrival - sent_at[end])
    return {
        "median": statistics.median(delays),
        "p90": sorted(delays)[max(0, round(0.9 * len(delays)) - 1)],
        "max": max(delays),
        "count": len(delays),
    }


def table(
    rows: list[dict[str, Any]], delay: dict[str, float], rss_mb: float, start_s: float
) -> str:
    cpu = "unknown CPU"
    with Path("/proc/cpuinfo").open() as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    lines = [
        (
            f"Local engine (pocketsphinx 5.1.1, en-us), {datetime.now(UTC):%Y-%m-%d}, {cpu}, "
            f"Python {platform.python_version()}; `make bench`. Audio: {len(SENTENCES)} espeak-ng "
            f"utterances ({rows[0]['audio']:.0f} s with pauses), synthetic speech, so absolute "
            "accuracy says little about real voices; compare runs with each other."
        ),
        "",
        "| run | WER | RTF | boosted phrases heard | phrases inserted where not said |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['run']} | {r['wer']:.2f} | {r['rtf']:.3f} | {r['keyterms']} | {r['inserted']} |"
        for r in rows
    ]
    lines += [
        "",
        (
            "Streaming latency, end of speech -> final (`endpointing=300`, real-time pacing, "
            f"{delay['count']} utterances): median {delay['median']:.2f} s, "
            f"p90 {delay['p90']:.2f} s, max {delay['max']:.2f} s."
        ),
        "",
        (
            f"Worker process peak RSS {rss_mb:.0f} MB (one warm decoder); engine start (worker "
            f"process, model load, first decoder) {start_s:.1f} s."
        ),
    ]
    return "\n".join(lines)


def write_results(text: str) -> None:
    section = f"{START}\n{text}\n{END}"
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if START in current and END in current:
        before, rest = current.split(START, 1)
        current = before + section + rest.split(END, 1)[1]
    else:
        current = current.rstrip() + "\n\n## Local engine (bench/engine_bench.py)\n\n" + section
    RESULTS.write_text(current.rstrip() + "\n")


async def main(write: bool) -> None:
    audio = clips(ROOT / "bench" / "out" / "corpus")
    started = time.monotonic()
    async with LocalEngine(workers=1) as engine:
        start_s = time.monotonic() - started
        rows = await accuracy(engine, audio)
        delay = await latency(engine, audio)
        stats = await engine.pool.stats()
    rss_mb = max(s["max_rss_kib"] for s in stats) / 1024
    text = table(rows, delay, rss_mb, start_s)
    print(text)
    if write:
        write_results(text)
        print(f"\nwritten to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only")
    asyncio.run(main(write=not parser.parse_args().no_write))
