"""The session's pure parts: URLs, options, failure classification, the replay buffer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from listend.daemon.errors import ConfigError
from listend.daemon.events import TranscriptEvent
from listend.daemon.plugin.source import AudioFormat
from listend.daemon.plugin.stream_options import StreamOptions
from listend.daemon.stream.capture import EVENT_QUEUE_SIZE
from listend.daemon.stream.deepgram import (
    check_stream_format,
    close_failure,
    connect_options,
    environment_for,
    make_client,
    open_stream,
)
from listend.daemon.stream.replay import ReplayBuffer
from listend.testing import DeepgramTestServer, Script
from tests.support.sessions import Collector, MemorySource, make_session


@pytest.mark.parametrize(
    ("url", "base", "ws"),
    [
        ("https://api.deepgram.com", "https://api.deepgram.com", "wss://api.deepgram.com"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080", "ws://127.0.0.1:8080"),
        ("wss://dg.internal/prefix", "https://dg.internal/prefix", "wss://dg.internal/prefix"),
    ],
)
def test_environment_for_base_urls(url, base, ws):
    env = environment_for(url)
    assert (env.base, env.production) == (base, ws)


def test_environment_rejects_what_is_not_a_url():
    with pytest.raises(ConfigError, match=r"deepgram\.url"):
        environment_for("dg.internal:8080")


def test_streams_open_where_the_sdk_would_open_them():
    assert make_client("https://dg.internal/prefix/").listen_url == (
        "wss://dg.internal/prefix/v1/listen"
    )


def test_streams_carry_the_options_and_credentials_without_compression():
    """The SDK's query encoding (lists repeat the key); PCM is not deflated."""

    async def main() -> None:
        async with DeepgramTestServer() as dg:
            options = {"model": "nova-3", "keywords": ["a:2", "b"], "interim_results": True}
            auth = f"Token {dg.api_key}"
            async with open_stream(make_client(dg.url), options, auth) as sock:
                ws = sock._websocket
                assert ws.extensions == []
            record = dg.connections[-1]
            assert ("keywords", "a:2") in record.query
            assert ("keywords", "b") in record.query
            assert ("model", "nova-3") in record.query
            assert record.authorization == auth

    asyncio.run(main())


def test_a_stream_opens_exactly_as_the_sdks_own_connect_opens_it():
    """``open_stream`` stands in for ``AsyncDeepgramClient().listen.v1.connect`` (without its
    REST client's imports and permessage-deflate): the same query parameters (in another
    order) and the same credentials reach the server; fails if a new SDK pin connects
    differently."""
    from deepgram import AsyncDeepgramClient  # noqa: PLC0415 - the reference, in this test only

    options = connect_options(
        StreamOptions(model="nova-3", keywords=["listend:2", "hall"], interim_results=True),
        AudioFormat(16000),
    )

    async def main() -> tuple[object, object]:
        async with DeepgramTestServer() as dg:
            sdk = AsyncDeepgramClient(api_key=dg.api_key, environment=environment_for(dg.url))
            async with sdk.listen.v1.connect(**options):
                pass
            async with open_stream(make_client(dg.url), options, f"Token {dg.api_key}"):
                pass
            theirs, ours = dg.connections[-2], dg.connections[-1]
            return (sorted(theirs.query), theirs.authorization), (
                sorted(ours.query),
                ours.authorization,
            )

    theirs, ours = asyncio.run(main())
    assert ours == theirs


def test_connect_options_take_the_format_from_the_source():
    options = StreamOptions(model="nova-3", keywords=["listend:2"], extra={"room": "hall"})
    query = connect_options(options, AudioFormat(8000, channels=2))
    assert query["encoding"] == "linear16"
    assert (query["sample_rate"], query["channels"]) == (8000, 2)
    assert query["keywords"] == ["listend:2"]
    assert query["extra"] == ["room:hall"]
    assert "model" in connect_options(StreamOptions(), AudioFormat(16000))


def test_contradicting_format_names_source_and_both_values():
    options = StreamOptions(sample_rate=16000, channels=1, encoding="linear16")
    check_stream_format("hall", options, AudioFormat(16000))  # agreeing is fine
    with pytest.raises(ConfigError) as caught:
        check_stream_format(
            "hall", StreamOptions(sample_rate=44100, channels=2), AudioFormat(16000)
        )
    message = str(caught.value)
    assert "source hall" in message
    assert "stream.sample_rate is 44100 but the source delivers 16000" in message
    assert "stream.channels is 2 but the source delivers 1" in message


@pytest.mark.parametrize(
    ("fmt", "why"),
    [
        (AudioFormat(1), "a sample rate of 1 Hz is not supported"),
        (AudioFormat(4_294_967_280), "4294967280 Hz is not supported"),
        (AudioFormat(16000, channels=32767), "32767 channels are not supported"),
        (AudioFormat(16000, channels=0), "0 channels are not supported"),
    ],
)
def test_formats_out_of_range_are_refused_when_the_session_starts(fmt, why):
    """Any source (a third-party one too) is checked, not only what a WAV header says."""
    with pytest.raises(ConfigError, match=why):
        check_stream_format("hall", StreamOptions(), fmt)


def test_to_bytes_never_rounds_a_positive_time_to_nothing():
    buffer = ReplayBuffer(AudioFormat(1), max_seconds=1.0)
    assert buffer.to_bytes(0.02) == 2  # one frame, not 0: the sender would spin on 0
    assert buffer.to_bytes(0) == 0


@pytest.mark.parametrize(
    ("code", "retry"), [(1006, True), (1011, True), (1013, True), (1008, False)]
)
def test_close_codes(code, retry):
    assert close_failure(code, "", "hall").retry is retry


def test_replay_buffer_trims_and_reports_lost_audio():
    async def main():
        buffer = ReplayBuffer(AudioFormat(1000), max_seconds=1.0)  # 2000 bytes
        await buffer.append(b"\1\0" * 500)
        assert await buffer.cover(400) is not None
        assert (buffer.start, buffer.covered) == (0, 400)  # kept until the final is committed
        buffer.release(600)  # never beyond what finals cover
        assert (buffer.start, buffer.acked) == (400, 400)
        await buffer.append(b"\2\0" * 1500)  # 4000 captured, 3600 uncovered, room for 2000
        assert (buffer.start, buffer.end) == (2000, 4000)
        assert buffer.lost() == 1600
        assert buffer.skip_lost() == 1600
        assert buffer.lost() == 0
        assert buffer.read(2000, 4) == b"\2\0\2\0"
        with pytest.raises(ValueError, match="dropped"):
            buffer.read(0, 10)

    asyncio.run(main())


def test_full_event_queue_drops_interims_but_never_finals():
    def event(seq: int, *, final: bool) -> TranscriptEvent:
        now = datetime.now(UTC)
        return TranscriptEvent(
            id=f"d/s/1/{seq}",
            device="d",
            source="s",
            epoch=1,
            seq=seq,
            start=0,
            end=1,
            started_at=now,
            ended_at=now,
            text="x",
            is_final=final,
        )

    async def main():
        async with DeepgramTestServer() as dg:
            session = make_session(dg, MemorySource(Script().say("x").pcm()), Collector())
            for seq in range(EVENT_QUEUE_SIZE):
                await session.emit(event(seq, final=True))
            await session.emit(event(-1, final=False))
            assert session.dropped_interims == 1
            blocked = asyncio.create_task(session.emit(event(-2, final=True)))
            await asyncio.sleep(0.05)
            assert not blocked.done()  # a final waits for room
            blocked.cancel()

    asyncio.run(main())
