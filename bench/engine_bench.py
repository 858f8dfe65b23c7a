"""The local engines measured through the Deepgram SDK, as the daemon uses them.

    .venv/bin/python bench/engine_bench.py [--no-write]

Each engine (pocketsphinx; Whisper when listend[whisper] is installed) and pocketsphinx alone
(its Decoder on whole utterances, no listend) runs in a process of its own, so peak RSS and
CPU are its own:

- accuracy and CPU: the fixed utterances of bench/corpus.py (espeak-ng, deterministic) in one
  stream with 1.2 s pauses ("joined"), sent as fast as the engine takes them, and each
  utterance as a file of its own through the REST API ("separate"): word error rate (WER),
  CPU seconds per audio second (the engine's process and its workers); with ``keyterm``
  boosting of the corpus's phrases: how many were heard, how many inserted where not said;
- latency: a stream paced in real time; the time from the last sample of speech leaving the
  client to the utterance's final (``speech_final``) arriving, p50 / p90;
- memory: peak RSS of the engine's processes (this process, which is also the SDK client and
  the engine's server, and its decoding worker), and the worker's own peak RSS and PSS (what
  the daemon adds for the engine: its server runs inside the daemon);
- natural speech: ``bench/out/natural.wav`` with its reference text in ``natural.txt``, if
  present (a public recording a user fetches; never committed), through the REST API.

Writes its table between the engine_bench markers of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
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
from listend.engine.choice import whisper_settings  # noqa: E402
from listend.engine.server import LocalEngine  # noqa: E402
from tests.support.audio import wav_bytes  # noqa: E402
from tests.support.evaluation import normalize, synthesize, word_error_rate  # noqa: E402

RATE = 16000
GAP = 1.2
CHUNK = 3200  # 100 ms
LATENCY_SENTENCES = 10
RESULTS = ROOT / "bench" / "RESULTS.md"
START, END = "<!-- engine_bench:start -->", "<!-- engine_bench:end -->"
NATURAL = ROOT / "bench" / "out" / "natural.wav"


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
        await asyncio.wait_for(receiver, 600)  # a loaded machine
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


def _cpu_seconds(pids: list[int]) -> float:
    """CPU time of this process (all its threads) and of ``pids`` (the decoding workers)."""
    total = time.process_time()
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _peak_rss_mb(pids: list[int]) -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    own += int(line.split()[1])
    return own / 1024


def _worker_memory_mb(pids: list[int]) -> tuple[float, float]:
    """The decoding workers' own peak RSS (VmHWM) and current PSS, without the server's process."""
    rss = pss = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    rss += int(line.split()[1])
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
    return rss / 1024, pss / 1024


def _keyterm_counts(finals: list[tuple[float, ListenV1Results]]) -> tuple[str, int]:
    by_sentence = list(zip(SENTENCES, texts(finals), strict=False))
    present = [(k, s) for k in KEYTERMS for s in SENTENCES if contains(s, k)]
    found = sum(1 for k, s in present for ref, hyp in by_sentence if ref == s and contains(hyp, k))
    inserted = sum(
        1 for k in KEYTERMS for ref, hyp in by_sentence if contains(hyp, k) and not contains(ref, k)
    )
    return f"{found}/{len(present)}", inserted


async def _rest_text(engine: LocalEngine, pcm: bytes) -> str:
    response = await client(engine).listen.v1.media.transcribe_file(request=wav_bytes(pcm))
    return str(response.results.channels[0].alternatives[0].transcript)


async def fresh_each(name: str, audio: list[bytes]) -> float:
    """WER with each utterance a file through an engine of its own (``transcribe --local``)."""
    heard = []
    for clip in audio:
        async with LocalEngine(workers=1, whisper=whisper_settings(name)) as engine:
            heard.append(await _rest_text(engine, clip + silence(0.3)))
    return word_error_rate(list(zip(SENTENCES, heard, strict=True)))


async def measure_engine(name: str, audio: list[bytes]) -> dict[str, Any]:
    """One engine through the SDK: the numbers of one row."""
    started = time.monotonic()
    engine = LocalEngine(workers=1, whisper=whisper_settings(name))
    async with engine:
        start_s = time.monotonic() - started
        pids = [w.pid for w in engine.pool.workers if w.pid is not None]
        pcm = silence(GAP) + b"".join(clip + silence(GAP) for clip in audio)
        seconds = len(pcm) / 2 / RATE
        await stream(engine, pcm, realtime=False)  # warm (pocketsphinx's cepstral mean)
        cpu = _cpu_seconds(pids)
        finals, _sent, _wall = await stream(engine, pcm, realtime=False)
        cpu = _cpu_seconds(pids) - cpu
        joined = word_error_rate([(" ".join(SENTENCES), " ".join(texts(finals)))])
        separate = [await _rest_text(engine, clip + silence(0.3)) for clip in audio]
        boosted, _sent, _wall = await stream(engine, pcm, realtime=False, keyterm=list(KEYTERMS))
        heard, inserted = _keyterm_counts(boosted)
        delay = await latency(engine, audio)
        natural = None
        if NATURAL.exists() and NATURAL.with_suffix(".txt").exists():
            with wave.open(str(NATURAL)) as wav:
                natural_pcm = wav.readframes(wav.getnframes())
            text = await _rest_text(engine, natural_pcm)
            natural = word_error_rate([(NATURAL.with_suffix(".txt").read_text(), text)])
        rss_mb = _peak_rss_mb(pids)  # while the worker lives
        worker_mb = _worker_memory_mb(pids)
        decoders = sum(s["decoders_built"] for s in await engine.pool.stats())
    fresh = await fresh_each(name, audio)
    return {
        "engine": engine.description,
        "joined": joined,
        "separate": word_error_rate(list(zip(SENTENCES, separate, strict=True))),
        "fresh": fresh,
        "keyterm_wer": word_error_rate([(" ".join(SENTENCES), " ".join(texts(boosted)))]),
        "keyterms": heard,
        "inserted": inserted,
        "natural": natural,
        "cpu": cpu / seconds,
        "latency": delay,
        "rss_mb": rss_mb,
        "worker_rss_mb": worker_mb[0],
        "worker_pss_mb": worker_mb[1],
        "decoders": decoders,
        "start_s": start_s,
        "audio": seconds,
    }


def measure_alone(audio: list[bytes]) -> dict[str, Any]:
    """pocketsphinx 5.1.1 without listend: one whole-utterance decode per file."""
    import pocketsphinx  # noqa: PLC0415

    def decode(decoder: Any, pcm: bytes) -> str:
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    decoder = pocketsphinx.Decoder(loglevel="ERROR")
    pcm = silence(GAP) + b"".join(clip + silence(GAP) for clip in audio)
    cpu = time.process_time()
    joined = decode(decoder, pcm)
    cpu = time.process_time() - cpu
    separate = [decode(decoder, clip) for clip in audio]
    natural = None
    if NATURAL.exists() and NATURAL.with_suffix(".txt").exists():
        with wave.open(str(NATURAL)) as wav:
            text = decode(decoder, wav.readframes(wav.getnframes()))
        natural = word_error_rate([(NATURAL.with_suffix(".txt").read_text(), text)])
    return {
        "engine": "pocketsphinx alone, one utterance per file (no listend)",
        "joined": word_error_rate([(" ".join(SENTENCES), joined)]),
        "separate": word_error_rate(list(zip(SENTENCES, separate, strict=True))),
        "fresh": word_error_rate(list(zip(SENTENCES, separate, strict=True))),  # batch CMN
        "natural": natural,
        "cpu": cpu / (len(pcm) / 2 / RATE),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


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
        "count": len(delays),
    }


def _cell(value: float | None, form: str = ".2f") -> str:
    return "-" if value is None else format(value, form)


def table(rows: list[dict[str, Any]]) -> str:
    cpu = "unknown CPU"
    with Path("/proc/cpuinfo").open() as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    seconds = next(r["audio"] for r in rows if "audio" in r)
    lines = [
        (
            f"Local engines, {datetime.now(UTC):%Y-%m-%d}, {cpu} ({os.cpu_count()} cores, shared "
            f"with other jobs), Python {platform.python_version()}; `make bench`. Audio: "
            f"{len(SENTENCES)} espeak-ng utterances ({seconds:.0f} s with pauses), synthetic "
            "speech: compare the rows with each other. WER: lower case, punctuation stripped. "
            "CPU: seconds per audio second, the engine's processes (joined run). Latency: end "
            "of speech -> final, real-time pacing, `endpointing=300`. Peak RSS: this process "
            "(SDK client and engine server) plus the worker; the worker's own peak RSS, its PSS "
            "at the end, and how many decoders it built."
        ),
        "",
        (
            "| engine | WER joined | WER separate files | ... each a fresh engine | WER natural | "
            "WER with keyterm (heard, inserted) | CPU per audio s | latency p50 / p90 s | "
            "peak RSS MB | worker peak RSS / PSS MB (decoders built) | start s |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        delay = r.get("latency")
        lines.append(
            f"| {r['engine']} | {r['joined']:.2f} | {r['separate']:.2f} | "
            f"{_cell(r.get('fresh'))} | "
            f"{_cell(r.get('natural'))} | "
            + (
                f"{r['keyterm_wer']:.2f} ({r['keyterms']}, {r['inserted']})"
                if "keyterms" in r
                else "-"
            )
            + f" | {r['cpu']:.3f} | "
            + (f"{delay['median']:.2f} / {delay['p90']:.2f}" if delay else "-")
            + f" | {r['rss_mb']:.0f} | "
            + (
                f"{r['worker_rss_mb']:.0f} / {r['worker_pss_mb']:.0f} ({r['decoders']})"
                if "worker_rss_mb" in r
                else "-"
            )
            + f" | {_cell(r.get('start_s'), '.1f')} |"
        )
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


def run_child(which: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, __file__, "--only", which],
        check=False,
        stdout=subprocess.PIPE,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0:
        raise SystemExit(f"engine_bench --only {which} failed (its stderr is above)")
    row: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return row


def main(write: bool, only: str | None) -> None:
    audio = clips(ROOT / "bench" / "out" / "corpus")
    if only is not None:
        row = measure_alone(audio) if only == "alone" else asyncio.run(measure_engine(only, audio))
        print(json.dumps(row))
        return
    engines = ["pocketsphinx"] + (["whisper"] if whisper_settings("auto") is not None else [])
    rows = [run_child(name) for name in engines] + [run_child("alone")]
    text = table(rows)
    print(text)
    if write:
        write_results(text)
        print(f"\nwritten to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--only", choices=["pocketsphinx", "whisper", "alone"], help="one row")
    options = parser.parse_args()
    main(write=not options.no_write, only=options.only)
