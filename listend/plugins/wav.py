"""A WAV header reader that says exactly why a file is not usable.

Python 3.11's :mod:`wave` rejects WAVE_FORMAT_EXTENSIBLE (what sox and many recorders write)
and reports other problems as "unknown format: 3"; this reads the RIFF chunks itself so the
error can say "32-bit float WAV" and how to convert it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

PCM = 0x0001
EXTENSIBLE = 0xFFFE
FORMAT_NAMES = {
    0x0002: "Microsoft ADPCM",
    0x0003: "IEEE float",
    0x0006: "A-law",
    0x0007: "µ-law",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0050: "MPEG",
    0x0055: "MP3",
    EXTENSIBLE: "extensible (with a cut or unknown subformat)",
}
CONVERT_HINT = "convert it with: ffmpeg -i IN -ac 1 -ar 16000 -c:a pcm_s16le OUT.wav"
#: the standard subformat GUID after its first two bytes (the format tag); other GUIDs
#: (ambisonic, vendor formats) are not PCM whatever their first bytes say
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_EXTENSIBLE_SIZE = 40
_UNKNOWN_SIZE = 0xFFFFFFFF  # streamed WAV (written to a pipe) and RF64 leave the size unset


class WavError(ValueError):
    """Why a file cannot be read as 16-bit PCM WAV."""


@dataclass(frozen=True, slots=True)
class WavInfo:
    sample_rate: int
    channels: int
    data_offset: int
    data_size: int  # whole frames actually present in the file


def read_wav_info(file: BinaryIO, file_size: int) -> WavInfo:
    """Parse the header of a 16-bit PCM WAV; raise :class:`WavError` saying what is wrong."""
    riff = file.read(12)
    if len(riff) < 12 or riff[:4] not in (b"RIFF", b"RF64") or riff[8:12] != b"WAVE":  # noqa: PLR2004
        msg = "is not a WAV file (no RIFF/WAVE header); for raw PCM set `format: raw`"
        raise WavError(msg)
    fmt: tuple[int, int] | None = None
    while len(header := file.read(8)) == 8:  # noqa: PLR2004
        chunk_id, size = header[:4], struct.unpack("<I", header[4:])[0]
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(file.read(size))
            file.seek(size & 1, 1)
        elif chunk_id == b"data":
            if fmt is None:
                raise WavError("is not a valid WAV file (audio data before the fmt chunk)")
            sample_rate, channels = fmt
            offset = file.tell()
            available = max(0, file_size - offset)
            if size == _UNKNOWN_SIZE or size > available:
                size = available
            frame = 2 * channels
            return WavInfo(sample_rate, channels, offset, size - size % frame)
        else:
            file.seek(size + (size & 1), 1)
    missing = "fmt and data chunks" if fmt is None else "data chunk"
    raise WavError(f"is not a valid WAV file (no {missing}; truncated?)")


def _parse_fmt(body: bytes) -> tuple[int, int]:
    if len(body) < 16:  # noqa: PLR2004
        raise WavError("is not a valid WAV file (fmt chunk too short)")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == EXTENSIBLE and len(body) >= _EXTENSIBLE_SIZE and body[26:40] == _GUID_TAIL:
        tag = struct.unpack("<H", body[24:26])[0]  # first two bytes of the SubFormat GUID
    if tag != PCM:
        name = FORMAT_NAMES.get(tag, f"format {tag:#06x}")
        if tag == 0x0003:  # noqa: PLR2004
            name = f"{bits}-bit {name}"
        raise WavError(f"is {name} WAV, not 16-bit PCM; {CONVERT_HINT}")
    if bits != 16:  # noqa: PLR2004
        raise WavError(f"is {bits}-bit PCM WAV, not 16-bit; {CONVERT_HINT}")
    if channels < 1 or rate < 1 or block_align != 2 * channels:
        msg = f"has an inconsistent fmt chunk ({channels} channels, {rate} Hz, "
        msg += f"{block_align}-byte frames)"
        raise WavError(msg)
    return rate, channels
