"""Events as a stream session would make them, for sink and delivery tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from listend.daemon.events import TranscriptEvent, UtteranceEndEvent, event_id

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
_seq = itertools.count(1)


def transcript(
    source: str,
    seq: int,
    text: str,
    *,
    device: str = "dev",
    epoch: int = 1_772_366_400_000,
    start: float | None = None,
    end: float | None = None,
    is_final: bool = True,
    speech_final: bool = True,
    channel: int = 0,
) -> TranscriptEvent:
    start = float(seq) if start is None else start
    end = start + 0.8 if end is None else end
    return TranscriptEvent(
        id=event_id(device, source, epoch, seq),
        device=device,
        source=source,
        epoch=epoch,
        seq=seq,
        channel=channel,
        start=start,
        end=end,
        started_at=T0 + timedelta(seconds=start),
        ended_at=T0 + timedelta(seconds=end),
        text=text,
        confidence=0.9,
        is_final=is_final,
        speech_final=speech_final,
    )


def said(
    text: str,
    *,
    final: bool = False,
    speech_final: bool = False,
    source: str = "hall",
    epoch: int = 1,
    channel: int = 0,
) -> TranscriptEvent:
    """The next transcript of ``source`` (numbered for you), as the captions tests write them."""
    return transcript(
        source,
        next(_seq),
        text,
        device="t",
        epoch=epoch,
        start=0.0,
        end=1.0,
        is_final=final,
        speech_final=speech_final,
        channel=channel,
    )


def utterance_end(
    source: str = "hall", seq: int | None = None, *, device: str = "dev", epoch: int = 1
) -> UtteranceEndEvent:
    """An UtteranceEnd of ``source``; numbered for you unless ``seq`` is given."""
    seq = next(_seq) if seq is None else seq
    return UtteranceEndEvent(
        id=event_id(device, source, epoch, seq),
        device=device,
        source=source,
        epoch=epoch,
        seq=seq,
        last_word_end=float(seq),
        at=T0,
    )
