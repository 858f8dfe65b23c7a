"""Voice-activity gating: stream only speech, plus pre-roll before it and hang-over after it.

Deepgram bills every streamed second, and a kiosk room is silent most of the day. The gate
classifies 30 ms frames with WebRTC's VAD (``webrtcvad-wheels``): it opens when enough recent
frames are voiced and then also lets through ``pre_roll`` seconds from before the first voiced
one (so the first word keeps its onset), and closes after ``hang_over`` seconds without a voiced
frame. What it lets through carries its source offset, so the session can map Deepgram's times
back to source time (:mod:`listend.daemon.stream.timeline`).
"""

from __future__ import annotations

import itertools
import logging
import math
from array import array
from collections import deque
from dataclasses import dataclass

from listend.daemon.errors import ConfigError
from listend.daemon.plugin.source import AudioFormat, VadConfig

log = logging.getLogger(__name__)

FRAME_MS = 30  # webrtcvad takes 10, 20 or 30 ms; 30 classifies best and costs least
VAD_RATES = (8000, 16000, 32000, 48000)
TRIGGER_FRAMES = 10  # the gate opens when, of the last TRIGGER_FRAMES frames,
TRIGGER_VOICED = 3  # at least this many are voiced (one stray frame of noise does not)


@dataclass(frozen=True, slots=True)
class Passage:
    """Audio the gate let through: ``offset`` is its byte offset in the source's audio."""

    offset: int
    audio: bytes
    closes: bool = False  # the gate closed right after it


class VoiceGate:
    """Feed it the source's chunks; it returns the passages to stream."""

    def __init__(self, fmt: AudioFormat, config: VadConfig, source: str) -> None:
        check_gate_format(fmt, source)
        self.format = fmt
        self.config = config
        import webrtcvad  # noqa: PLC0415 - only gated sources load it (it costs 5 MB of RSS)

        self.vad = webrtcvad.Vad(config.aggressiveness)
        self.frame_bytes = fmt.bytes_per_frame * fmt.sample_rate * FRAME_MS // 1000
        self.pre_roll_frames = math.ceil(config.pre_roll * 1000 / FRAME_MS)
        self.hang_over_frames = math.ceil(config.hang_over * 1000 / FRAME_MS)
        self.open = False
        self.opened = 0  # times the gate opened
        self._pending = bytearray()  # the start of a frame not complete yet
        self._offset = 0  # source offset of _pending[0]
        # closed: the last frames (offset, audio, voiced), enough for pre-roll and the trigger
        self._held: deque[tuple[int, bytes, bool]] = deque(
            maxlen=self.pre_roll_frames + TRIGGER_FRAMES
        )
        self._quiet = 0  # open: frames since the last voiced one
        self._run = bytearray()  # open: frames passed in this feed, not returned yet
        self._run_offset = 0

    def feed(self, chunk: bytes) -> list[Passage]:
        """Classify the complete frames in ``chunk`` (a partial one waits for the next)."""
        self._pending += chunk
        usable = len(self._pending) - len(self._pending) % self.frame_bytes
        out: list[Passage] = []
        view = memoryview(self._pending)
        try:
            for start in range(0, usable, self.frame_bytes):
                frame = bytes(view[start : start + self.frame_bytes])
                self._frame(self._offset + start, frame, out)
        finally:
            view.release()
        del self._pending[:usable]
        self._offset += usable
        self._end_run(out, closes=False)
        return out

    def flush(self) -> list[Passage]:
        """The source ended: an open gate lets the last partial frame through."""
        out: list[Passage] = []
        if self.open and self._pending:
            self._pass(self._offset, bytes(self._pending))
            self._end_run(out, closes=False)
        self._offset += len(self._pending)
        self._pending.clear()
        return out

    def _frame(self, offset: int, frame: bytes, out: list[Passage]) -> None:
        voiced = self._is_speech(frame)
        if self.open:
            self._pass(offset, frame)
            self._quiet = 0 if voiced else self._quiet + 1
            if self._quiet >= max(1, self.hang_over_frames):
                self.open = False
                self._end_run(out, closes=True)
            return
        held = self._held
        held.append((offset, frame, voiced))
        recent = list(itertools.islice(held, max(0, len(held) - TRIGGER_FRAMES), None))
        if sum(v for _, _, v in recent) < TRIGGER_VOICED:
            return
        first_voiced = len(held) - len(recent) + next(i for i, r in enumerate(recent) if r[2])
        for held_offset, held_frame, _ in itertools.islice(
            held, max(0, first_voiced - self.pre_roll_frames), None
        ):
            self._pass(held_offset, held_frame)
        held.clear()
        self.open = True
        self.opened += 1
        self._quiet = 0

    def _pass(self, offset: int, audio: bytes) -> None:
        if not self._run:
            self._run_offset = offset
        self._run += audio

    def _end_run(self, out: list[Passage], *, closes: bool) -> None:
        if self._run or closes:
            out.append(Passage(self._run_offset, bytes(self._run), closes))
            self._run.clear()

    def _is_speech(self, frame: bytes) -> bool:
        channels = self.format.channels
        if channels > 1:
            frame = downmix(frame, channels)
        return bool(self.vad.is_speech(frame, self.format.sample_rate))


def downmix(frame: bytes, channels: int) -> bytes:
    """Interleaved 16-bit frames -> their mono average (what the VAD classifies)."""
    samples = array("h", frame)
    per_channel = [samples[c::channels] for c in range(channels)]
    return array("h", (sum(s) // channels for s in zip(*per_channel, strict=True))).tobytes()


def check_gate_format(fmt: AudioFormat, source: str) -> None:
    """WebRTC's VAD reads 16-bit PCM at 8, 16, 32 or 48 kHz: anything else is a config error."""
    problems = []
    if fmt.encoding != "linear16":
        problems.append(f"it reads 16-bit PCM (linear16), the source delivers {fmt.encoding}")
    if fmt.sample_rate not in VAD_RATES:
        rates = ", ".join(str(r) for r in VAD_RATES)
        problems.append(
            f"it works at {rates} Hz, the source delivers {fmt.sample_rate} Hz "
            "(set the source's sample_rate to one of those)"
        )
    if problems:
        msg = f"source {source}: vad cannot gate this source: " + "; ".join(problems)
        raise ConfigError(msg)
