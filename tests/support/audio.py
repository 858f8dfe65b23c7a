"""WAV files for tests: one writer that can also make the odd formats a source must refuse."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

PCM_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")[2:]


def wav_bytes(
    data: bytes,
    *,
    tag: int = 1,
    channels: int = 1,
    rate: int = 16000,
    bits: int = 16,
    subformat: int | None = None,
    data_size: int | None = None,
) -> bytes:
    """A WAV file holding ``data``: 16-bit PCM by default; ``tag``/``bits``/``subformat``
    (WAVE_FORMAT_EXTENSIBLE) and a false ``data_size`` make the others. An unrelated LIST
    chunk comes first, as in files written by many recorders, for readers to skip."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    if subformat is not None:  # WAVE_FORMAT_EXTENSIBLE
        fmt += struct.pack("<HHIHH", 22, bits, 4, subformat, 0) + PCM_GUID_TAIL
    size = len(data) if data_size is None else data_size
    chunks = b"LIST" + struct.pack("<I", 4) + b"INFO"
    chunks += b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def read_pcm(path: Path) -> bytes:
    """The samples of a PCM WAV file, as raw bytes."""
    with wave.open(str(path)) as wav:
        return wav.readframes(wav.getnframes())
