"""The durable audio spool: its files, and a session that spools during an outage and the next
one that transcribes the spool first (in process; the daemon end to end is test_crash.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from listend.daemon.plugin.source import AudioFormat
from listend.daemon.stream.spool import Spool, SpoolRun
from listend.testing import DeepgramTestServer, Script
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
