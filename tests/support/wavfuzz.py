"""Generated hostile WAV files, and the child that feeds them to the engine and to ``validate``.

:func:`wav_mutants` builds WAVs from a fixed seed: RIFF, fmt and data headers with odd sizes,
rates, channel counts, bit depths and format tags (PCM, float, µ-law, A-law, extensible,
unknown), truncated and oversized chunks, odd padding and random byte flips, each with a
fraction of a second of audio so the engine's work per case stays small. ``WAV_TABLE`` holds
the cases that once crashed, each kept as a regression.

Run as ``python -m tests.support.wavfuzz DIR SECONDS AT_LEAST``, it starts ONE embedded
engine in this process (an engine per case would cost the whole budget), POSTs each
``DIR/*.wav`` to its ``/v1/listen`` with its token, and runs ``listend validate`` on the
matching ``*.yaml`` (a config whose file source is that WAV) through the real entry point.
Past SECONDS it starts no case once AT_LEAST are done (the table first). It prints a JSON line
per case: HTTP status, whether the body was JSON, the exit code and stderr of ``validate``,
CPU seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import random
import struct
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

TAGS = [1, 1, 1, 3, 6, 7, 0xFFFE, 2, 0x11, 0x55, 0, 0xFFFF]
RATES = [16000, 16000, 8000, 44100, 0, 1, 3999, 4000, 192000, 192001, 2**31, 2**32 - 1]
CHANNELS = [1, 1, 2, 0, 8, 9, 255, 32767, 65535]
BITS = [16, 16, 8, 32, 0, 1, 4, 12, 24, 64, 65535]
SIZES = [0, 1, 2, 3, 15, 17, 0x7FFFFFFF, 0xFFFFFFF0, 0xFFFFFFFF]
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def chunk(kind: bytes, body: bytes, *, size: int | None = None, pad: bool = True) -> bytes:
    """One RIFF chunk; ``size`` overrides the declared size, ``pad`` adds the odd-size byte."""
    declared = len(body) if size is None else size
    return kind + struct.pack("<I", declared) + body + (b"\0" if pad and len(body) & 1 else b"")


def fmt_body(
    tag: int = 1,
    channels: int = 1,
    rate: int = 16000,
    bits: int = 16,
    *,
    align: int | None = None,
    sub: int | None = None,
) -> bytes:
    """A fmt chunk's body; ``sub`` makes it WAVE_FORMAT_EXTENSIBLE with that subformat tag."""
    width = max(bits, 8) // 8
    block = (width * channels) & 0xFFFF if align is None else align
    byte_rate = (rate * block) & 0xFFFFFFFF
    body = struct.pack("<HHIIHH", tag, channels, rate, byte_rate, block, bits)
    if sub is not None:
        body = struct.pack("<HHIIHH", 0xFFFE, channels, rate, byte_rate, block, bits)
        body += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", sub) + _GUID_TAIL
    return body


def riff(*chunks: bytes, size: int | None = None) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body) if size is None else size) + body


def audio(rng: random.Random, size: int = 3200) -> bytes:
    """Noise: something for the recognizer to chew on, a tenth of a second at 16 kHz."""
    return rng.randbytes(size)


def wav(fmt: bytes, data: bytes, *before: bytes, data_size: int | None = None) -> bytes:
    return riff(chunk(b"fmt ", fmt), *before, chunk(b"data", data, size=data_size))


def wav_mutants(seed: int, count: int) -> Iterator[bytes]:
    """``count`` WAVs; the same seed gives the same files."""
    rng = random.Random(seed)
    strategies: list[Callable[[random.Random], bytes]] = [
        _odd_fields, _odd_fields, _extensible, _chunk_sizes, _truncate, _flip_bytes, _layout,
    ]  # fmt: skip
    for _ in range(count):
        yield rng.choice(strategies)(rng)


def _odd_fields(rng: random.Random) -> bytes:
    fmt = fmt_body(rng.choice(TAGS), rng.choice(CHANNELS), rng.choice(RATES), rng.choice(BITS))
    if rng.random() < 0.2:  # a block align that disagrees with the rest
        fmt = fmt[:12] + struct.pack("<H", rng.choice([0, 1, 3, 0xFFFF])) + fmt[14:]
    return wav(fmt, audio(rng, rng.choice([0, 1, 3, 3200])))


def _extensible(rng: random.Random) -> bytes:
    fmt = fmt_body(channels=rng.choice(CHANNELS[:5]), bits=rng.choice(BITS), sub=rng.choice(TAGS))
    if rng.random() < 0.3:
        fmt = fmt[: rng.choice([16, 18, 24, 26, 39])]  # cut inside the extension
    return wav(fmt, audio(rng))


def _chunk_sizes(rng: random.Random) -> bytes:
    size = rng.choice(SIZES)
    match rng.randrange(4):
        case 0:  # the fmt chunk lies about its size
            return riff(chunk(b"fmt ", fmt_body(), size=size), chunk(b"data", audio(rng)))
        case 1:  # the data chunk does
            return wav(fmt_body(), audio(rng, rng.choice([0, 1, 3201])), data_size=size)
        case 2:  # a metadata chunk before the audio does
            extra = chunk(b"LIST", b"INFOISFT\x03\0\0\0ab", size=size)
            return wav(fmt_body(), audio(rng), extra)
        case _:  # the RIFF header does
            return riff(chunk(b"fmt ", fmt_body()), chunk(b"data", audio(rng)), size=size)


def _truncate(rng: random.Random) -> bytes:
    data = wav(fmt_body(rng.choice(TAGS[:6]), bits=rng.choice(BITS[:4])), audio(rng))
    return data[: rng.randrange(len(data) if rng.random() < 0.2 else 64)]


def _flip_bytes(rng: random.Random) -> bytes:
    data = bytearray(wav(fmt_body(), audio(rng)))
    for _ in range(rng.randint(1, 6)):
        data[rng.randrange(44)] = rng.randrange(256)  # the header, where it matters
    return bytes(data)


def _layout(rng: random.Random) -> bytes:
    fmt, data = fmt_body(), audio(rng)
    layouts = [
        riff(chunk(b"data", data), chunk(b"fmt ", fmt)),  # data before fmt
        riff(chunk(b"fmt ", fmt)),  # no data chunk
        riff(chunk(b"data", data)),  # no fmt chunk
        riff(chunk(b"fmt ", fmt), chunk(b"fmt ", fmt_body(3, bits=32)), chunk(b"data", data)),
        riff(chunk(b"fmt ", fmt), chunk(b"junk", b"x", pad=False), chunk(b"data", data)),
        riff(chunk(b"fmt ", fmt + b"\0"), chunk(b"data", data[:-1])),  # odd sizes, padded
        riff(chunk(b"fmt ", fmt), *[chunk(b"LIST", b"x" * 999)] * 1100, chunk(b"data", data)),
        b"RIFF\0\0\0\0WAVE",
        b"RF64" + b"\xff" * 4 + b"WAVE" + chunk(b"fmt ", fmt) + chunk(b"data", data),
    ]
    return rng.choice(layouts)


@dataclass(frozen=True)
class WavCase:
    """A regression case: the WAV, the engine's HTTP status and ``validate``'s exit code."""

    data: bytes
    status: int
    code: int


#: cases that once crashed, hung or were accepted wrongly, kept so they stay fixed
WAV_TABLE: dict[str, WavCase] = {
    "silence-16k": WavCase(wav(fmt_body(), bytes(3200)), 200, 0),
    # issue 14 item 6: passed validate, then wedged the loop (a 0-byte chunk, sent forever)
    "rate-1hz": WavCase(wav(fmt_body(rate=1), bytes(3200)), 400, 78),
    "rate-4294967280hz": WavCase(wav(fmt_body(rate=4_294_967_280), bytes(3200)), 400, 78),
    "channels-32767": WavCase(wav(fmt_body(channels=32767), bytes(3200)), 400, 78),
    # issue 14 item 10: a short fmt chunk gave a 500 and a traceback; float, 8-bit and µ-law
    # gave "could not decode" (the daemon's file source takes 16-bit PCM only: 78)
    "short-fmt": WavCase(
        riff(chunk(b"fmt ", fmt_body()[:14]), chunk(b"data", bytes(3200))), 400, 78
    ),
    "float32": WavCase(wav(fmt_body(3, bits=32), bytes(6400)), 200, 78),
    "pcm-8bit": WavCase(wav(fmt_body(bits=8), bytes(1600)), 200, 78),
    "mulaw": WavCase(wav(fmt_body(7, bits=8), bytes(1600)), 200, 78),
    "alaw": WavCase(wav(fmt_body(6, bits=8), bytes(1600)), 200, 78),
    "extensible-float": WavCase(wav(fmt_body(bits=32, sub=3), bytes(6400)), 200, 78),
    # the fuzz found: validate took an extensible fmt cut inside its GUID as PCM (the engine
    # refused it): both now read the subformat only from a whole, standard GUID
    "extensible-cut-in-guid": WavCase(
        riff(chunk(b"fmt ", fmt_body(sub=1)[:30]), chunk(b"data", bytes(3200))), 400, 78
    ),
    "huge-metadata-chunk": WavCase(
        wav(fmt_body(), bytes(3200), chunk(b"LIST", b"", size=0xFFFFFFF0)), 400, 78
    ),
    "huge-data-size": WavCase(wav(fmt_body(channels=2), bytes(3201), data_size=0xFFFFFFFF), 200, 0),
    "odd-fmt-unpadded": WavCase(
        riff(chunk(b"fmt ", fmt_body() + b"\0", pad=False), chunk(b"data", b"ab")), 400, 78
    ),
}


def _validate(config: Path) -> dict[str, object]:
    from listend.cli import main  # noqa: PLC0415 - the child's import, timed once

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["validate", str(config)])
    except BaseException:  # what escapes main() is the finding: keep where it was raised
        code, err = -1, io.StringIO(traceback.format_exc(limit=-4))
    return {"code": code, "stderr": err.getvalue()}


async def _post(
    session: object, url: str, token: str, data: bytes, params: dict[str, str]
) -> dict[str, object]:
    import aiohttp  # noqa: PLC0415

    assert isinstance(session, aiohttp.ClientSession)
    headers = {"Authorization": f"Token {token}", "Content-Type": "audio/wav"}
    async with session.post(
        f"{url}/v1/listen", data=data, headers=headers, params=params
    ) as response:
        body = await response.read()
    try:
        parsed = json.loads(body)
        is_json = isinstance(parsed, dict)
    except ValueError:
        is_json = False
    return {"status": response.status, "json": is_json, "body": body[:500].decode(errors="replace")}


def _params(data: bytes) -> dict[str, str]:
    """Every other case split by channel: the per-channel path has its own arithmetic."""
    return {"multichannel": "true"} if data and data[-1] & 1 else {}


def _table_first(path: Path) -> tuple[bool, str]:
    return (not path.name.startswith("table-"), path.name)


async def _main(root: Path, budget: float, at_least: int) -> None:
    import aiohttp  # noqa: PLC0415

    from listend.engine.server import LocalEngine  # noqa: PLC0415

    async with LocalEngine(workers=1) as engine, aiohttp.ClientSession() as session:
        deadline = time.monotonic() + budget  # then stop starting cases, once at_least are done
        for done, case in enumerate(sorted(root.glob("*.wav"), key=_table_first)):
            if done >= at_least and time.monotonic() > deadline:
                break
            started = time.process_time()  # CPU, not wall time: the cores are shared
            try:
                data = case.read_bytes()
                result = await _post(session, engine.url, engine.token, data, _params(data))
            except Exception:
                result = {"status": -1, "json": False, "body": traceback.format_exc(limit=-3)}
            result |= await asyncio.to_thread(_validate, case.with_suffix(".yaml"))
            result |= {"case": case.name, "cpu_seconds": time.process_time() - started}
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(_main(Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])))
