"""PCM in any declared format -> mono 16 kHz linear16, the only audio pocketsphinx's model takes.

Streaming: chunks may split samples and frames anywhere; state carries over between calls.
Mono 16 kHz linear16 (what the daemon's sources send) passes through untouched; anything else
goes through ``resample`` (numpy), imported only then: the decoding worker stays small.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from listend.engine.formats import SAMPLE_WIDTHS, TARGET_RATE, check_audio_format

if TYPE_CHECKING:
    from listend.engine.resample import Resampler

__all__ = ["TARGET_RATE", "PcmConverter"]


class PcmConverter:
    """Declared (encoding, sample_rate, channels) bytes -> mono 16 kHz int16 bytes."""

    def __init__(self, encoding: str, sample_rate: int, channels: int) -> None:
        check_audio_format(encoding, sample_rate, channels)
        self.encoding = encoding
        self.channels = channels
        self.frame_bytes = SAMPLE_WIDTHS[encoding] * channels
        self._pending = b""
        self._passthrough = (encoding, sample_rate, channels) == ("linear16", TARGET_RATE, 1)
        self._resampler: Resampler | None = None
        if sample_rate != TARGET_RATE:
            from listend.engine.resample import Resampler  # noqa: PLC0415 - numpy

            self._resampler = Resampler(sample_rate)

    def convert(self, chunk: bytes, *, final: bool = False) -> bytes:
        data = self._pending + chunk
        usable = len(data) - len(data) % self.frame_bytes
        self._pending = data[usable:]
        if self._passthrough:
            return data[:usable]
        from listend.engine import resample  # noqa: PLC0415 - numpy

        samples = resample.to_float_mono(data[:usable], self.encoding, self.channels)
        if self._resampler is not None:
            samples = self._resampler.process(samples, final=final)
        return resample.to_linear16(samples)
