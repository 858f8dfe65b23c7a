"""One Wyoming transcription: the client's audio through a StreamSession, its finals back.

The session is the same machinery as a source's (reconnects with replay, ``fallback: local``,
Finalize at the end): ``audio-stop`` ends the in-memory source, the session finalizes and
returns, and the finals are the transcript. Each final is also sent as a ``transcript-chunk``
as it arrives. A request that cannot finish within ``answer_timeout`` after ``audio-stop``
(Deepgram down and no fallback) is cancelled and answered with an ``error``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from wyoming.asr import Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.error import Error
from wyoming.event import Event

from listend.daemon.events import AnyEvent, TranscriptEvent
from listend.daemon.plugin.stream_options import StreamOptions
from listend.daemon.stream.capture import Publish
from listend.daemon.stream.session import StreamSession
from listend.daemon.tasks import cancel_and_wait
from listend.daemon.wyoming.audio import RequestAudio

log = logging.getLogger(__name__)

#: Builds the session for a request: (name, its audio, stream options, where events go).
SessionFactory = Callable[[str, RequestAudio, StreamOptions, Publish], StreamSession]
Send = Callable[[Event], Awaitable[None]]


class Request:
    """From ``audio-start`` to the answer; :meth:`start` it, feed it, then :meth:`answer`."""

    def __init__(
        self,
        make_session: SessionFactory,
        *,
        name: str,
        audio: RequestAudio,
        options: StreamOptions,
        language: str | None,
        send: Send,
    ) -> None:
        self.name = name
        self.audio = audio
        self.language = language
        self._send = send
        self._texts: list[str] = []
        self._started = False  # transcript-start sent
        self.session = make_session(name, audio, options, self._on_event)
        self._task: asyncio.Task[None] | None = None

    @property
    def transcribes(self) -> bool:
        """False when there are no credentials and no local engine: nothing would answer."""
        return self.session.client is not None

    def start(self) -> None:
        self._task = asyncio.create_task(self.session.run(), name=f"listend[{self.name}]")

    async def _on_event(self, event: AnyEvent, on_commit: Callable[[], None] | None) -> None:
        if on_commit is not None:
            on_commit()  # nothing is kept for a request: its client is the only consumer
        if not isinstance(event, TranscriptEvent) or not event.is_final or not event.text:
            return
        self._texts.append(event.text)
        try:
            if not self._started:
                self._started = True
                await self._send(TranscriptStart(language=self.language).event())
            await self._send(TranscriptChunk(text=event.text).event())
        except ConnectionError as exc:  # the client left: its connection cancels this request
            log.debug("%s: transcript-chunk not sent: %s", self.name, exc)

    async def answer(self, within: float) -> None:
        """``audio-stop``: end the audio, wait for the session's last final, send the answer."""
        task = self._task
        if task is None:
            raise RuntimeError(f"{self.name}: answer() before start()")
        await self.audio.end()
        done, _ = await asyncio.wait({task}, timeout=within)
        if not done:
            await cancel_and_wait(task)
            log.error("%s: no transcript %.0fs after audio-stop; giving up", self.name, within)
            await self._send(
                Error(
                    text=f"listend: no transcript within {within:g}s (Deepgram unreachable?)",
                    code="timeout",
                ).event()
            )
            return
        task.result()  # a bug in the session surfaces here, not as a silent empty answer
        failure = self.session.failure
        if failure is not None:
            await self._send(Error(text=f"listend: {failure}", code="stream-failed").event())
            return
        text = " ".join(self._texts)
        if not self._started:
            await self._send(TranscriptStart(language=self.language).event())
        await self._send(Transcript(text=text, language=self.language).event())
        await self._send(TranscriptStop().event())
        log.info("%s: transcript of %d characters", self.name, len(text))

    async def cancel(self) -> None:
        """The client went away mid-request: end the session now, nothing left running."""
        if self._task is None:
            return
        try:
            await cancel_and_wait(self._task)
        except Exception:  # the session failed before the cancel: nobody to answer now
            log.exception("%s: the stream failed", self.name)
