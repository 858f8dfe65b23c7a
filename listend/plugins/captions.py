"""Caption formats for finals: SubRip (SRT) and WebVTT cues, plain text lines.

Cue times are the finals' ``start``/``end``: seconds since the source started, so a caption
file lines up with a recording of that source run (one file per run: see the file sink).
"""

from __future__ import annotations

import re

from listend.api import TranscriptEvent

VTT_HEADER = "WEBVTT\n\n"
_SPACES = re.compile(r"\s+")


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def srt_time(seconds: float) -> str:
    return _clock(seconds, ",")


def vtt_time(seconds: float) -> str:
    return _clock(seconds, ".")


def one_line(text: str) -> str:
    """Cue text on one line: a blank line would end the cue early."""
    return _SPACES.sub(" ", text).strip()


def _times(event: TranscriptEvent) -> tuple[float, float]:
    return event.start, max(event.end, event.start)


def srt_cue(index: int, event: TranscriptEvent) -> str:
    start, end = _times(event)
    return f"{index}\n{srt_time(start)} --> {srt_time(end)}\n{one_line(event.text)}\n\n"


def vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def vtt_cue(event: TranscriptEvent) -> str:
    """A cue whose identifier is the event id, so a file can be matched back to events."""
    start, end = _times(event)
    body = vtt_escape(one_line(event.text))
    return f"{event.id}\n{vtt_time(start)} --> {vtt_time(end)}\n{body}\n\n"


def text_line(event: TranscriptEvent) -> str:
    return one_line(event.text) + "\n"
