"""What audio the local engine accepts; checked in the daemon before any worker is involved."""

from __future__ import annotations

from listend.dgproto.recognizer import UnsupportedParams

TARGET_RATE = 16000  # what pocketsphinx's model (and Whisper) take
SAMPLE_WIDTHS = {"linear16": 2, "linear32": 4, "mulaw": 1, "alaw": 1}
MIN_RATE, MAX_RATE = 4000, 192000
MAX_CHANNELS = 8


class UnsupportedAudio(UnsupportedParams):
    """The declared encoding/rate/channels cannot be decoded (a 400 on the wire)."""


def check_audio_format(encoding: str, sample_rate: int, channels: int) -> None:
    if encoding not in SAMPLE_WIDTHS:
        raise UnsupportedAudio(
            f"encoding {encoding!r} is not supported by the local engine "
            f"(expected one of: {', '.join(SAMPLE_WIDTHS)})"
        )
    if not MIN_RATE <= sample_rate <= MAX_RATE:
        raise UnsupportedAudio(f"sample_rate {sample_rate} is out of range ({MIN_RATE}-{MAX_RATE})")
    if not 1 <= channels <= MAX_CHANNELS:
        raise UnsupportedAudio(f"channels {channels} is out of range (1-{MAX_CHANNELS})")
