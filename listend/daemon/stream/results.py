"""Deepgram messages -> listend events, in source time, each emitted once.

Deepgram's times restart at 0 on every connection; the session tells the factory where in the
stream each connection's audio began, and the factory shifts every time by that offset, then
maps it to source time through the :class:`Timeline` (not the identity when a voice gate left
silence out of the stream). After a
reconnect the replayed audio is transcribed again: finals (and words) that end before what
was already emitted are dropped, so a consumer sees each word once and times only move forward.
With ``multichannel`` each channel is tracked on its own; audio is covered once every channel
has a final past it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from deepgram.listen.v1.types import (
    ListenV1Metadata,
    ListenV1Results,
    ListenV1SpeechStarted,
    ListenV1UtteranceEnd,
)

from listend.daemon.events import (
    MetadataEvent,
    SpeechStartedEvent,
    TranscriptEvent,
    UtteranceEndEvent,
    Word,
    event_id,
)
from listend.daemon.stream.timeline import Timeline

EPSILON = 1e-3  # Deepgram reports times in milliseconds


class EventFactory:
    """Numbers events (``epoch``/``seq``/``id``) and maps connection time to source time."""

    def __init__(
        self,
        *,
        device: str,
        source: str,
        epoch: int,
        wall_start: float,
        engine: str = "deepgram",
        timeline: Timeline | None = None,
        recovered: bool = False,
    ) -> None:
        self.device = device
        self.source = source
        self.epoch = epoch
        self.wall_start = wall_start  # time.time() when the source's audio began
        self.engine = engine
        self.seq = 0
        self.offset = 0.0  # stream seconds at which the current connection's audio began
        self.timeline = timeline or Timeline(1)  # stream -> source time (default: the same)
        self.request_id: str | None = None
        self.recovered = recovered  # transcribing audio an earlier run spooled
        self._emitted: dict[int, float] = {}  # per channel: source seconds covered by finals
        self._channels = 1
        self._last_utterance_end: dict[int, float] = {}

    def connection(self, offset: float, request_id: str | None) -> None:
        self.offset = offset
        self.request_id = request_id

    def skip_to(self, seconds: float) -> None:
        """Audio before ``seconds`` is gone for good (a gap): nothing before it is expected."""
        for channel in range(self._channels):
            self._emitted[channel] = max(self._emitted.get(channel, 0.0), seconds)

    def emitted_until(self, channel: int = 0) -> float:
        return self._emitted.get(channel, 0.0)

    @property
    def covered(self) -> float:
        """Source seconds every channel has finals for (what the replay buffer may free)."""
        return min(self.emitted_until(c) for c in range(self._channels))

    def _channel_of(self, index: list[int] | None) -> int:
        if index and len(index) > 1:
            self._channels = max(self._channels, index[1])
        return index[0] if index else 0

    def numbered(self, request_id: str | None = None) -> dict[str, Any]:
        self.seq += 1
        return {
            "id": event_id(self.device, self.source, self.epoch, self.seq),
            "device": self.device,
            "source": self.source,
            "epoch": self.epoch,
            "seq": self.seq,
            "request_id": request_id or self.request_id,
            "recovered": self.recovered or None,
        }

    def wall(self, seconds: float) -> datetime:
        return datetime.fromtimestamp(self.wall_start + seconds, UTC)

    def at(self, seconds: float) -> float:
        """Source time of a time Deepgram reported (where something starts)."""
        return self.timeline.to_source(self.offset + seconds)

    def until(self, seconds: float) -> float:
        """Source time of a time Deepgram reported as where something ends."""
        return self.timeline.to_source(self.offset + seconds, end=True)

    def transcript(self, message: ListenV1Results) -> TranscriptEvent | None:
        """The event for a Results message, or None when it holds nothing new."""
        start = self.at(message.start)
        end = self.until(message.start + message.duration)
        channel = self._channel_of(message.channel_index)
        floor = self.emitted_until(channel)
        if message.is_final:
            if end <= floor + EPSILON:
                return None  # a replayed final we already emitted
            self._emitted[channel] = end
        alternatives = message.channel.alternatives or []
        if not alternatives:
            return None
        best = alternatives[0]
        heard = best.words or []
        words = tuple(
            Word(
                word=w.word,
                start=self.at(w.start),
                end=word_end,
                confidence=w.confidence,
                punctuated_word=w.punctuated_word,
                speaker=w.speaker,
            )
            for w in heard
            if (word_end := self.until(w.end)) > floor + EPSILON
        )
        if heard and not words:
            return None
        text = best.transcript
        if len(words) != len(heard):
            text = " ".join(w.punctuated_word or w.word for w in words)
        if not text:
            return None
        first = max(start, floor)
        return TranscriptEvent(
            **self.numbered(message.metadata.request_id),
            channel=channel,
            start=first,
            end=end,
            started_at=self.wall(first),
            ended_at=self.wall(end),
            text=text,
            words=words,
            confidence=best.confidence,
            is_final=bool(message.is_final),
            speech_final=bool(message.speech_final),
            from_finalize=bool(message.from_finalize),
            engine=self.engine,
        )

    def utterance_end(self, message: ListenV1UtteranceEnd) -> UtteranceEndEvent | None:
        last_word_end = self.until(message.last_word_end)
        channel = self._channel_of(message.channel)
        if last_word_end <= self._last_utterance_end.get(channel, -1.0) + EPSILON:
            return None
        self._last_utterance_end[channel] = last_word_end
        return UtteranceEndEvent(
            **self.numbered(),
            channel=channel,
            last_word_end=last_word_end,
            at=self.wall(last_word_end),
        )

    def speech_started(self, message: ListenV1SpeechStarted) -> SpeechStartedEvent | None:
        timestamp = self.at(message.timestamp)
        channel = self._channel_of(message.channel)
        if timestamp < self.emitted_until(channel) - EPSILON:
            return None  # speech in replayed audio that is already transcribed
        return SpeechStartedEvent(
            **self.numbered(),
            channel=channel,
            timestamp=timestamp,
            at=self.wall(timestamp),
        )

    def metadata(self, message: ListenV1Metadata) -> MetadataEvent:
        return MetadataEvent(
            **self.numbered(message.request_id),
            duration=message.duration,
            channels=message.channels,
            created=message.created,
            sha256=message.sha256,
            at=datetime.now(UTC),
        )
