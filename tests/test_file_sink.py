"""The file sink: SRT and WebVTT that standard parsers read back, JSONL, text, rotation."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
import srt
import webvtt

from listend.daemon.delivery.worker import SinkWorker
from listend.daemon.plugin.source import PluginContext
from listend.daemon.retry.backoff import Backoff
from listend.plugins.file_sink import FileSink, FileSinkConfig
from listend.subtitles import srt_time, vtt_escape, vtt_time
from tests.support.events import transcript, utterance_end
from tests.support.waiting import async_test, wait_until_async

FINALS = [
    transcript("hall", 0, "turn on the kitchen lights", start=1.25, end=2.5),
    transcript("hall", 1, "and the radio", start=2.75, end=3.1, speech_final=False),
    transcript("hall", 2, "fish & chips <now>", start=3.2, end=4.0),
    transcript("hall", 3, "an hour later", start=3725.5, end=3727.042),
]
NOISE = [
    transcript("hall", 4, "interim words", start=3728.0, end=3728.5, is_final=False),
    utterance_end("hall", 5, epoch=FINALS[0].epoch),
]


def make_sink(tmp_path, **options) -> FileSink:
    config = FileSinkConfig.model_validate({"type": "file", **options})
    return FileSink("disk", config, PluginContext("dev", tmp_path))


async def deliver_all(sink: FileSink, events) -> None:
    await sink.start()
    await sink.deliver(events)
    await sink.stop()


@async_test
async def test_srt_parses_and_matches_the_finals(tmp_path):
    sink = make_sink(tmp_path, format="srt")
    await deliver_all(sink, [*FINALS, *NOISE])
    path = tmp_path / "transcripts" / f"hall-{FINALS[0].epoch}.srt"
    subtitles = list(srt.parse(path.read_text()))
    assert [s.content for s in subtitles] == [f.text for f in FINALS]
    assert [s.index for s in subtitles] == [1, 2, 3, 4]
    for sub, final in zip(subtitles, FINALS, strict=True):
        assert sub.start == timedelta(seconds=final.start)
        assert sub.end == timedelta(seconds=final.end)


@async_test
async def test_webvtt_parses_and_matches_the_finals(tmp_path):
    sink = make_sink(tmp_path, format="vtt", path="captions/{device}-{source}.vtt")
    await deliver_all(sink, [*FINALS, *NOISE])
    path = tmp_path / "captions" / "dev-hall.vtt"
    assert path.read_text().startswith("WEBVTT\n\n")
    captions = webvtt.read(str(path))
    assert [c.identifier for c in captions] == [f.id for f in FINALS]
    assert [c.text for c in captions] == [vtt_escape(f.text) for f in FINALS]
    assert [c.start for c in captions] == [vtt_time(f.start) for f in FINALS]
    assert [c.end for c in captions] == [vtt_time(f.end) for f in FINALS]


def test_caption_clock():
    assert srt_time(3725.5) == "01:02:05,500"
    assert vtt_time(0.0004) == "00:00:00.000"
    assert vtt_time(100 * 3600 + 0.001) == "100:00:00.001"


@async_test
async def test_a_new_source_run_starts_a_new_caption_file(tmp_path):
    sink = make_sink(tmp_path, format="vtt", path="{source}.vtt")
    later = transcript("hall", 0, "second run", epoch=FINALS[0].epoch + 60_000, start=0.5)
    await deliver_all(sink, [FINALS[0], later])
    first = webvtt.read(str(tmp_path / "hall.1.vtt"))
    second = webvtt.read(str(tmp_path / "hall.vtt"))
    assert [c.text for c in first] == [FINALS[0].text]
    assert [c.text for c in second] == ["second run"]


@async_test
async def test_jsonl_and_text_with_a_daily_path(tmp_path):
    jsonl = make_sink(tmp_path, receive=["final", "utterance_end"])
    await deliver_all(jsonl, [*FINALS, NOISE[1]])
    [path] = (tmp_path / "transcripts").glob("hall-*.jsonl")
    local_day = FINALS[0].started_at.astimezone().date().isoformat()
    assert path.name == f"hall-{local_day}.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["id"] for line in lines] == [e.id for e in [*FINALS, NOISE[1]]]

    text = make_sink(tmp_path, format="text", path="{source}.txt")
    await deliver_all(text, [*FINALS, *NOISE])
    assert (tmp_path / "hall.txt").read_text().splitlines() == [f.text for f in FINALS]


@async_test
async def test_redelivery_after_a_restart_is_not_written_twice(tmp_path):
    for fmt in ("jsonl", "vtt"):
        path = f"out.{fmt}"
        await deliver_all(make_sink(tmp_path, format=fmt, path=path), FINALS[:2])
        # a new daemon gets the same events again (outbox delete lost in a crash), then more
        await deliver_all(make_sink(tmp_path, format=fmt, path=path), FINALS)
        text = (tmp_path / path).read_text()
        for final in FINALS:
            assert text.count(final.id) == 1, fmt


@async_test
async def test_srt_numbering_continues_in_an_existing_file(tmp_path):
    await deliver_all(make_sink(tmp_path, format="srt", path="a.srt"), FINALS[:2])
    await deliver_all(make_sink(tmp_path, format="srt", path="a.srt"), FINALS[2:])
    subtitles = list(srt.parse((tmp_path / "a.srt").read_text()))
    assert [s.index for s in subtitles] == [1, 2, 3, 4]


@async_test
async def test_size_rotation_keeps_the_newest(tmp_path):
    sink = make_sink(tmp_path, path="log.jsonl", max_bytes=1024, keep=2, fsync=False)
    events = [transcript("hall", seq, "word " * 40) for seq in range(12)]
    await sink.start()
    for event in events:
        await sink.deliver([event])
    await sink.stop()
    files = sorted(p.name for p in tmp_path.glob("log*.jsonl"))
    assert len(files) == 3
    assert "log.1.jsonl" not in files  # the oldest rotated copies were removed
    seen = []
    for name in files:
        seen += [json.loads(line)["seq"] for line in (tmp_path / name).read_text().splitlines()]
        assert (tmp_path / name).stat().st_size <= 1024
    assert sorted(seen) == list(range(min(seen), 12))  # the newest events, each once


@async_test
async def test_torn_last_line_is_not_glued_to(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"id": "dev/x/1/1"}) + "\n" + '{"id": "dev/hall/1/')
    await deliver_all(make_sink(tmp_path, path="t.jsonl"), [FINALS[0]])
    last = path.read_text().splitlines()[-1]
    assert json.loads(last)["id"] == FINALS[0].id


@async_test
async def test_unwritable_directory_is_retried_not_lost(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    config = FileSinkConfig.model_validate({"type": "file", "path": str(blocker / "x.jsonl")})
    worker = SinkWorker(FileSink("disk", config, PluginContext("dev", tmp_path)), Backoff(cap=0.05))
    task = asyncio.create_task(worker.run())
    await worker.put(FINALS[0])
    await wait_until_async(lambda: worker.failed >= 2, 10, "two failed attempts")
    assert len(worker.outbox) == 1
    worker.close(timeout=0)
    await task


def test_bad_path_template():
    with pytest.raises(ValueError, match="placeholders are"):
        FileSinkConfig.model_validate({"type": "file", "path": "{room}.txt"})


@async_test
async def test_text_and_captions_files_get_no_control_characters(tmp_path):
    hostile = transcript("hall", 1, "lights\x1b[2J on\x00 \u202eevil\u202c\x85now")
    for fmt in ("text", "srt", "vtt"):
        await deliver_all(make_sink(tmp_path, format=fmt, path=f"out.{fmt}"), [hostile])
        written = (tmp_path / f"out.{fmt}").read_text()
        assert "lights[2J on evil now" in written, fmt
        assert not set(written) & {"\x1b", "\x00", "\u202e", "\u202c", "\x85"}, fmt
