"""The durable audio spool and the end-to-end acknowledgement: the spool's files, a session that
spools during an outage and the next one that transcribes the spool first, and finals freeing
their audio only once committed (in process; the daemon end to end is test_crash.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from listend.daemon.delivery.router import Router
from listend.daemon.delivery.worker import SinkWorker
from listend.daemon.events import AnyEvent
from listend.daemon.plugin.sink import Sink, SinkConfig
from listend.daemon.plugin.source import AudioFormat, PluginContext
from listend.daemon.stream.spool import Spool, SpoolRun
from listend.testing import DeepgramTestServer, Script
from tests.support.events import transcript, utterance_end
from tests.support.sessions import Collector, MemorySource, make_session
from tests.support.waiting import async_test, wait_until_async

FMT = AudioFormat(16000)


def spooled_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.pcm")) if directory.exists() else []


@async_test
async def test_segment_files_round_trip_skip_what_is_committed_and_survive_a_torn_tail(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path / "hall", FMT, max_bytes=1 << 20)
    run = SpoolRun(spool.directory, epoch=1000, wall_start=1.5, format=FMT)
    await spool.append(run, [(0, b"\1\0" * 100), (1000, b"\2\0" * 100)])
    await spool.append(run, [(1200, b"\3\0" * 100)])
    spool.release(run, 100)  # finals committed up to byte 100 of the source
    await spool.flush()
    (path,) = spooled_files(spool.directory)
    with path.open("ab") as handle:  # a power cut in the middle of a record
        handle.write(b"\x00" * 7)

    (loaded,) = await Spool(tmp_path / "hall", FMT, max_bytes=1 << 20).load()
    assert (loaded.epoch, loaded.wall_start, loaded.acked) == (1000, 1.5, 100)
    records = list(loaded.records())
    assert [(offset, len(audio)) for offset, audio in records] == [
        (100, 100),
        (1000, 200),
        (1200, 200),
    ]
    spool.release(run, 1400)  # all of it committed: the run is gone
    await spool.flush()
    assert list(spool.directory.iterdir()) == []
    spool.close()


@async_test
async def test_a_spool_in_another_format_is_discarded_with_its_length(tmp_path, caplog) -> None:
    spool = Spool(tmp_path / "hall", AudioFormat(8000), max_bytes=1 << 20)
    await spool.append(SpoolRun(spool.directory, 1, 0.0, AudioFormat(8000)), [(0, b"\0" * 16000)])
    assert await Spool(tmp_path / "hall", FMT, max_bytes=1 << 20).load() == []
    assert "1.0s of audio from run 1 in another format" in caplog.text
    await spool.flush()
    assert spooled_files(spool.directory) == []


@async_test
async def test_audio_captured_during_an_outage_is_transcribed_by_the_next_start(
    tmp_path: Path,
) -> None:
    """Deepgram refuses every handshake; the session stops with all of its audio untranscribed;
    the next session (Deepgram back) transcribes the spool before its own audio, with the
    original times, marked recovered, and removes the spool."""
    script = Script().say("turn on the kitchen lights", then_silence=1.0).say("open the door")
    directory = tmp_path / "spool" / "hall"
    async with DeepgramTestServer() as dg:
        dg.faults.refuse(10_000)
        spool = Spool(directory, FMT, max_bytes=1 << 20)
        first = make_session(
            dg,
            MemorySource(script.pcm()),
            Collector(),
            finalize_timeout=0.5,
            spool=spool,
        )
        running = asyncio.create_task(first.run())
        size = len(script.pcm())
        await wait_until_async(
            lambda: sum(p.stat().st_size for p in spooled_files(directory)) > size,
            30,
            "all of the audio in the spool",
        )
        first.stop()
        await running
        assert not dg.connections

        dg.faults.clear()
        sink = Collector()
        later = Script().silence(0.5).say("good night")
        second = make_session(
            dg, MemorySource(later.pcm()), sink, spool=Spool(directory, FMT, max_bytes=1 << 20)
        )
        await second.run()
    recovered = [e for e in sink.finals() if e.recovered]
    assert [w.word for e in recovered for w in e.words] == script.words
    for word, span in zip((w for e in recovered for w in e.words), script.spans, strict=True):
        assert abs(word.start - span.start) < 0.1
    wall = recovered[0].started_at.timestamp() - recovered[0].start
    assert abs(wall - first.factory.wall_start) < 0.001  # the wall clock of the first run
    live = [e for e in sink.finals() if not e.recovered]
    assert [w.word for e in live for w in e.words] == ["good", "night"]
    assert sink.finals().index(live[0]) > sink.finals().index(recovered[-1])  # spool first
    assert len({e.id for e in sink.events}) == len(sink.events)
    assert spooled_files(directory) == []


class KeepingSink(Sink):
    """Confirms every batch at once."""

    type_name = "keeping"

    def __init__(self, name: str, state_dir: Path) -> None:
        super().__init__(name, SinkConfig(type="keeping"), PluginContext("dev", state_dir))
        self.delivered: list[str] = []

    async def deliver(self, events: Sequence[AnyEvent]) -> None:
        self.delivered.extend(e.id for e in events)


@async_test
async def test_a_final_is_acknowledged_once_committed_to_every_routed_outbox(tmp_path) -> None:
    router = Router({"hall": ["a", "b"]}, {"a": ["final"], "b": ["final", "utterance_end"]})
    workers = {name: SinkWorker(KeepingSink(name, tmp_path)) for name in ("a", "b")}
    acked: list[tuple[str, bool]] = []

    def ack(event_id: str) -> Callable[[], None]:
        def committed() -> None:  # every worker has written this final (the n-th) by now
            n = len(acked) + 1
            acked.append((event_id, all(w.commits.written >= n for w in workers.values())))

        return committed

    async with asyncio.TaskGroup() as group:
        for name, worker in workers.items():
            await worker.open()
            router.attach(name, worker)
            group.create_task(worker.run())
        routing = group.create_task(router.run())
        events = [transcript("hall", seq, f"word {seq}") for seq in range(5)]
        for event in events:
            await router.publish(event, ack(event.id))
        await router.publish(utterance_end("hall", 9))  # not a final: nothing to acknowledge
        await wait_until_async(lambda: len(acked) == 5, 20, "every final acknowledged")
        await router.close()
        await routing
        for worker in workers.values():
            worker.close()
    assert acked == [(e.id, True) for e in events]  # in order, each after its commits


@async_test
async def test_the_audio_of_a_final_stays_until_it_is_committed() -> None:
    """A session keeps a final's audio (replay buffer, spool) until the router acknowledges
    the final: after a crash before that, the audio is still there to transcribe."""
    held: list[Callable[[], None]] = []

    async def publish(event: AnyEvent, on_commit: Callable[[], None] | None = None) -> None:
        if on_commit is not None:
            held.append(on_commit)

    script = Script().say("turn on the lights").say("close the door")
    async with DeepgramTestServer() as dg:
        session = make_session(dg, MemorySource(script.pcm()), publish)  # type: ignore[arg-type]
        await session.run()
    buffer = session.buffer
    assert held
    assert buffer.covered == buffer.end  # every word transcribed ...
    assert (buffer.start, buffer.acked) == (0, 0)  # ... and nothing freed yet
    held[0]()
    assert 0 < buffer.acked < buffer.end
    for on_commit in held[1:]:
        on_commit()
    assert buffer.acked == buffer.end


@async_test
async def test_audio_that_does_not_fit_in_the_spool_is_logged_and_counted(tmp_path, caplog) -> None:
    script = Script().say("turn on the kitchen lights", then_silence=1.0).say("open the door")
    async with DeepgramTestServer() as dg:
        dg.faults.refuse(10_000)
        spool = Spool(tmp_path / "hall", FMT, max_bytes=FMT.bytes_per_second)  # one second
        session = make_session(
            dg, MemorySource(script.pcm()), Collector(), finalize_timeout=0.5, spool=spool
        )
        running = asyncio.create_task(session.run())
        await wait_until_async(lambda: session.stats.unspooled_seconds > 0, 30, "an overflow")
        session.stop()
        await running
    assert "the spool is full (spool_max_mb)" in caplog.text
    seconds = script.duration - 1.0
    assert session.stats.unspooled_seconds == pytest.approx(seconds, abs=0.01)
    assert f"{seconds:.1f}s of audio did not fit in the spool" in caplog.text
    (run,) = await Spool(tmp_path / "hall", FMT, max_bytes=1).load()
    assert run.size == FMT.bytes_per_second


@async_test
async def test_a_span_of_a_live_run_holds_the_run_until_it_is_committed(tmp_path) -> None:
    spool = Spool(tmp_path / "hall", FMT, max_bytes=1 << 20)
    run = SpoolRun(spool.directory, epoch=7, wall_start=0.0, format=FMT)
    await spool.append(run, [(0, b"\1\0" * 500), (1000, b"\2\0" * 500), (2000, b"\3\0" * 500)])
    span = run.span(1000, 2000)  # dropped from memory: transcribed while the run goes on
    assert [(offset, len(audio)) for offset, audio in span.records()] == [(1000, 1000)]
    spool.release(run, 3000)  # the live stream's finals after the span are committed ...
    assert run.acked == 1000  # ... but the run is held where the span is
    spool.release(span, 1500)
    assert run.acked == 1500
    spool.forget(span)  # the span is transcribed and committed: the hold is gone
    await spool.flush()
    assert spooled_files(spool.directory) == []
    spool.close()


@async_test
async def test_an_outage_longer_than_the_replay_buffer_is_transcribed_from_the_spool(
    tmp_path: Path,
) -> None:
    """Within one run: what the full replay buffer dropped during the outage is transcribed
    from the spool before the stream resumes, every word once, in source time."""
    script = Script()
    for words in ("turn on the lights", "open the door", "play music", "good night", "lock up"):
        script.say(words, then_silence=0.6)  # each utterance shorter than the buffer
    async with DeepgramTestServer() as dg:
        dg.faults.drop(after_bytes=FMT.bytes_per_second, code=1006)
        dg.faults.refuse(1, status=429, retry_after=4.0)  # longer than the 2 s buffer
        sink = Collector()
        spool = Spool(tmp_path / "hall", FMT, max_bytes=1 << 20)
        source = MemorySource(script.pcm(), realtime=True)
        session = make_session(dg, source, sink, spool=spool, replay_buffer_seconds=2.0)
        async with asyncio.timeout(60):
            await session.run()
        await spool.flush()
    assert session.stats.gap_seconds == 0
    assert sink.final_words() == script.words  # every word, once
    words = [w for e in sink.finals() for w in e.words]
    for word, span in zip(words, script.spans, strict=True):
        assert abs(word.start - span.start) < 0.1
    recovered = [e for e in sink.finals() if e.recovered]
    assert recovered  # what the buffer dropped came from the spool
    assert len({e.id for e in sink.events}) == len(sink.events)
    assert spooled_files(spool.directory) == []
    spool.close()
