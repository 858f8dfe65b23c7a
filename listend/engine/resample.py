"""Sample-format decoding, down-mixing and resampling to 16 kHz, with numpy.

Only streams that are not already mono 16 kHz linear16 need it (see ``audio.PcmConverter``),
so a worker that decodes only such audio never imports numpy (~15 MB of RSS). Resampling is
a windowed-sinc interpolator (``audioop`` is deprecated and gone in Python 3.13). Output
sample ``n`` sits exactly at input time ``n / 16000`` s, so times stay continuous and exact
across chunks.
"""

from __future__ import annotations

from math import gcd

import numpy as np
import numpy.typing as npt

from listend.engine.formats import TARGET_RATE

_HALF_TAPS = 16  # taps each side of the interpolated point

Floats = npt.NDArray[np.float32]


def _mulaw_table() -> Floats:
    codes = ~np.arange(256, dtype=np.uint8)
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = ((mantissa.astype(np.int32) << 3) + 0x84) << exponent
    values = np.where(sign != 0, 0x84 - magnitude, magnitude - 0x84)
    return (values / 32768.0).astype(np.float32)


def _alaw_table() -> Floats:
    codes = np.arange(256, dtype=np.uint8) ^ 0x55
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = (codes & 0x0F).astype(np.int32)
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << (exponent - 1)
    )
    values = np.where(sign != 0, magnitude, -magnitude)
    return (values / 32768.0).astype(np.float32)


_TABLES = {"mulaw": _mulaw_table(), "alaw": _alaw_table()}


def _decode(raw: bytes, encoding: str) -> Floats:
    if encoding == "linear16":
        return (np.frombuffer(raw, dtype="<i2") / 32768.0).astype(np.float32)
    if encoding == "linear32":
        return (np.frombuffer(raw, dtype="<i4") / 2147483648.0).astype(np.float32)
    return _TABLES[encoding][np.frombuffer(raw, dtype=np.uint8)]


class Resampler:
    """Streaming band-limited resampler from ``in_rate`` to ``out_rate``."""

    def __init__(self, in_rate: int, out_rate: int = TARGET_RATE) -> None:
        divisor = gcd(in_rate, out_rate)
        self._step_num = in_rate // divisor  # input samples per output sample =
        self._step_den = out_rate // divisor  # step_num / step_den, kept exact
        self._cutoff = min(1.0, out_rate / in_rate)  # low-pass when downsampling
        self._buffer: Floats = np.zeros(_HALF_TAPS, dtype=np.float32)  # left zero padding
        self._buffer_start = -_HALF_TAPS  # absolute input index of _buffer[0]
        self._next_out = 0
        self._offsets = np.arange(-_HALF_TAPS + 1, _HALF_TAPS + 1)

    def process(self, samples: Floats, *, final: bool = False) -> Floats:
        if final:
            samples = np.concatenate([samples, np.zeros(_HALF_TAPS, dtype=np.float32)])
        self._buffer = np.concatenate([self._buffer, samples])
        available = self._buffer_start + len(self._buffer)  # absolute index past the end
        # Output n needs inputs up to floor(n * step) + HALF_TAPS.
        last = ((available - _HALF_TAPS) * self._step_den - 1) // self._step_num
        count = int(last) - self._next_out + 1
        if count <= 0:
            return np.zeros(0, dtype=np.float32)
        n = np.arange(self._next_out, self._next_out + count, dtype=np.int64)
        position = n * self._step_num
        base = position // self._step_den
        frac = (position % self._step_den) / self._step_den
        index = base[:, None] + self._offsets[None, :]  # absolute input indices
        distance = self._offsets[None, :] - frac[:, None]  # in input samples, (-HALF, HALF]
        window = 0.5 + 0.5 * np.cos(np.pi * distance / (_HALF_TAPS + 1))  # Hann taper
        taps = np.sinc(distance * self._cutoff) * window * self._cutoff
        out = (self._buffer[index - self._buffer_start] * taps).sum(axis=1)
        self._next_out += count
        keep_from = int(base[-1]) + 1 - _HALF_TAPS - self._buffer_start
        if keep_from > 0:
            self._buffer = self._buffer[keep_from:]
            self._buffer_start += keep_from
        resampled: Floats = out.astype(np.float32)
        return resampled


def to_float_mono(raw: bytes, encoding: str, channels: int) -> Floats:
    """Whole frames of ``encoding`` -> mono float samples in [-1, 1)."""
    samples = _decode(raw, encoding)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return samples


def to_linear16(samples: Floats) -> bytes:
    pcm: bytes = np.clip(np.rint(samples * 32768.0), -32768, 32767).astype("<i2").tobytes()
    return pcm
