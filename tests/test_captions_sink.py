"""The captions sink without a browser: line assembly, config, HTTP and WebSocket behaviour."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket

import aiohttp
import pytest

from listend.daemon.errors import ListendError
from listend.daemon.plugin.manager import load_plugins
from listend.plugins.captions_board import MAX_OPEN_LINE_CHARS, CaptionBoard
from listend.plugins.captions_sink import MAX_PENDING_LINES, CaptionsSinkConfig
from tests.support.captions import make_sink
from tests.support.cli import run_listend
from tests.support.events import said, utterance_end
from tests.support.net import free_port
from tests.support.paths import ROOT, SAMPLE
from tests.support.waiting import wait_until_async


def texts(board: CaptionBoard, source: str | None = None) -> list[tuple[str, str, bool]]:
    return [(line.final, line.interim, line.done) for line in board.snapshot(source)]


def test_board_overwrites_interims_commits_finals_and_breaks_on_speech_final():
    board = CaptionBoard()
    board.apply(said("hel"))
    board.apply(said("hello wor"))
    assert texts(board) == [("", "hello wor", False)]
    board.apply(said("Hello world.", final=True))
    board.apply(said("how"))
    assert texts(board) == [("Hello world.", "how", False)]
    (line,) = board.apply(said("How are you?", final=True, speech_final=True))
    assert line.done
    assert texts(board) == [("Hello world. How are you?", "", True)]
    board.apply(said("Fine", final=True))
    board.apply(utterance_end())
    board.apply(said("bye"))
    assert texts(board) == [
        ("Hello world. How are you?", "", True),
        ("Fine", "", True),
        ("", "bye", False),
    ]


def test_board_drops_unconfirmed_hypotheses_and_empty_lines():
    board = CaptionBoard()
    assert board.apply(said("")) == []
    assert board.apply(said("", final=True, speech_final=True)) == []
    board.apply(said("uh"))
    (line,) = board.apply(said("", final=True, speech_final=True))
    assert line.done
    assert line.final == ""
    assert texts(board) == []  # nothing to keep
    board.apply(said("from the old run"))
    changed = board.apply(said("new run", epoch=2))
    assert [(c.final, c.interim, c.done) for c in changed] == [
        ("", "", True),
        ("", "new run", False),
    ]


def test_board_keeps_sources_and_channels_apart_with_bounded_history():
    board = CaptionBoard(history=3)
    for n in range(5):
        board.apply(said(f"hall {n}", final=True, speech_final=True))
    board.apply(said("lobby left", final=True, speech_final=True, source="lobby"))
    board.apply(said("right", source="lobby", channel=1))
    assert [t for t, _, _ in texts(board, "hall")] == ["hall 2", "hall 3", "hall 4"]
    assert texts(board, "lobby") == [("lobby left", "", True), ("", "right", False)]
    assert [t for t, _, _ in texts(board)] == ["hall 4", "lobby left", ""]  # newest 3 overall
    assert board.sources() == ["hall", "lobby"]


def test_board_breaks_a_line_that_never_ends():
    board = CaptionBoard()
    words = "word " * (MAX_OPEN_LINE_CHARS // 5 + 1)
    (line,) = board.apply(said(words.strip(), final=True))
    assert line.done


def test_config_defaults_and_errors():
    cfg = CaptionsSinkConfig(type="captions")
    assert cfg.receive == ["final", "interim", "utterance_end"]
    assert cfg.address() == ("127.0.0.1", 8080)
    assert CaptionsSinkConfig(type="captions", listen="[::1]:9000").address() == ("::1", 9000)
    assert CaptionsSinkConfig(type="captions", listen=":9000").address() == ("0.0.0.0", 9000)
    for bad in ("8080", "host:99999", "a:b:1"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            CaptionsSinkConfig(type="captions", listen=bad)
    with pytest.raises(ValueError, match="font_size"):
        CaptionsSinkConfig(type="captions", font_size="12;color:red")


def test_registered_and_validated_from_yaml(write_config, tmp_path):
    assert "captions" in load_plugins().sinks.names()
    path = write_config(
        f"device: t\nstate_dir: {tmp_path}\n"
        "sources:\n  hall:\n    type: file\n    path: config/samples/hello.wav\n"
        "sinks:\n  screen:\n    type: captions\n    listen: localhost\n    theme: sepia\n"
    )
    result = run_listend("validate", str(path))
    assert result.returncode == 78, result.stderr
    assert "sinks.screen.listen: expected HOST:PORT, e.g." in result.stderr, result.stderr
    assert "sinks.screen.theme: Input should be 'dark' or 'light'" in result.stderr


def test_busy_port_is_a_clear_error(tmp_path):
    async def scenario() -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            sink = make_sink(tmp_path, busy.getsockname()[1])
            with pytest.raises(ListendError, match=r"captions sink captions: cannot listen on"):
                await sink.start()
            assert not sink.reachable()

    asyncio.run(scenario())


def test_page_is_self_contained_with_settings_and_escaping(tmp_path):
    async def scenario() -> None:
        sink = make_sink(
            tmp_path, free_port(), title="<Hall> & {{settings}}", lines=7, lang="fr-CA"
        )
        await sink.start()
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{sink.url}source/hall") as response:
                    assert response.status == 200
                    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
                    page = await response.text()
                async with http.get(f"{sink.url}source/..%2Fetc") as response:
                    assert response.status == 404
                async with http.get(f"{sink.url}nothing") as response:
                    assert response.status == 404
        finally:
            await sink.stop()
        assert '<html lang="fr-CA" data-theme="dark">' in page
        assert "<title>&lt;Hall&gt; &amp; {{settings}} \u2014 hall</title>" in page
        assert '"lines": 7' in page
        assert '"source": "hall"' in page
        assert page.count("{{") == 3  # the title's own text, not a placeholder
        for external in ("src=", 'href="http', "@import", "url("):
            assert external not in page, external

    asyncio.run(scenario())


async def silent_page(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A page that completes the WebSocket handshake and then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert b"101 Switching Protocols" in await reader.readuntil(b"\r\n\r\n")
    writer.transport.pause_reading()
    return reader, writer


def test_slow_or_silent_pages_never_block_delivery(tmp_path, monkeypatch):
    """A page that stops reading is dropped; delivery and the other pages carry on."""
    monkeypatch.setattr("listend.plugins.captions_sink.SEND_TIMEOUT", 1.0)
    count = MAX_PENDING_LINES + 100
    big = "x" * 20_000  # fills socket buffers quickly

    async def scenario() -> None:
        port = free_port()
        sink = make_sink(tmp_path, port)
        await sink.start()
        try:
            async with aiohttp.ClientSession() as http:
                reader = await http.ws_connect(f"ws://127.0.0.1:{port}/ws?source=hall")
                hello = json.loads((await reader.receive()).data)
                assert hello["t"] == "hello"
                assert hello["lines"] == []
                _, silent = await silent_page(port)
                await wait_until_async(lambda: len(sink.pages) >= 2, 30, "both pages connected")
                async with asyncio.timeout(30):

                    async def read_all() -> list[str]:
                        seen: list[str] = []
                        while len(seen) < count:
                            batch = json.loads((await reader.receive()).data)
                            seen.extend(line["final"][:10] for line in batch["lines"])
                        return seen

                    reading = asyncio.create_task(read_all())
                    for n in range(count):
                        await sink.deliver(
                            [said(f"line {n:05d} {big}", final=True, speech_final=True)]
                        )
                    # The silent page is dropped, the reading page got every line in order.
                    await wait_until_async(
                        lambda: len(sink.pages) <= 1, 30, "the silent page dropped"
                    )
                    seen = await reading
                assert seen == [f"line {n:05d}" for n in range(count)]
                await reader.close()
                silent.close()
        finally:
            await sink.stop()

    asyncio.run(scenario())


def test_stop_closes_pages_with_going_away(tmp_path):
    async def scenario() -> None:
        sink = make_sink(tmp_path, free_port())
        await sink.start()
        await sink.deliver([said("Kept.", final=True, speech_final=True), said("open")])
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"{sink.url.replace('http', 'ws')}ws")
            hello = json.loads((await ws.receive()).data)
            assert [(line["final"], line["interim"]) for line in hello["lines"]] == [
                ("Kept.", ""),
                ("", "open"),
            ]
            async with asyncio.timeout(30):
                await sink.stop()
                closing = await ws.receive()
            assert closing.type == aiohttp.WSMsgType.CLOSE
            assert closing.data == aiohttp.WSCloseCode.GOING_AWAY
        assert not sink.reachable()

    asyncio.run(scenario())


def test_documented_example_is_valid(write_config, tmp_path):
    readme = (ROOT / "docs" / "captions.md").read_text()
    example = re.search(
        r"```yaml\n(sinks:\n  screen:\n    type: captions\n.*?)```", readme, re.DOTALL
    )
    assert example is not None
    path = write_config(
        f"device: t\nstate_dir: {tmp_path}\n"
        f"sources:\n  hall:\n    type: file\n    path: {SAMPLE}\n" + example[1]
    )
    result = run_listend("validate", str(path))
    assert result.returncode == 0, result.stderr


def test_a_page_that_sends_data_is_disconnected(tmp_path):
    """Pages send nothing: a client sending frames (1 MB of garbage, or any data) is closed
    at once, never buffered."""

    async def scenario() -> list[tuple[aiohttp.WSMsgType, object]]:
        sink = make_sink(tmp_path, free_port())
        await sink.start()
        closes = []
        try:
            async with aiohttp.ClientSession() as http:
                for garbage in (b"\xff" * (1 << 20), "hello"):
                    ws = await http.ws_connect(f"{sink.url.replace('http', 'ws')}ws")
                    await ws.receive()  # hello
                    if isinstance(garbage, bytes):
                        await ws.send_bytes(garbage)
                    else:
                        await ws.send_str(garbage)
                    async with asyncio.timeout(30):
                        closing = await ws.receive()
                    closes.append((closing.type, closing.data))
                    await ws.close()
                await wait_until_async(lambda: not sink.pages, 30, "pages forgotten")
        finally:
            await sink.stop()
        return closes

    closes = asyncio.run(scenario())
    assert [kind for kind, _ in closes] == [aiohttp.WSMsgType.CLOSE] * 2
    assert closes[0][1] == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    assert closes[1][1] == aiohttp.WSCloseCode.UNSUPPORTED_DATA


def test_a_url_over_8_kb_is_refused_without_a_traceback(tmp_path, caplog):
    async def scenario() -> int:
        sink = make_sink(tmp_path, free_port())
        await sink.start()
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{sink.url}source/{'a' * 9000}") as response,
            ):
                return response.status
        finally:
            await sink.stop()

    with caplog.at_level(logging.DEBUG):
        status = asyncio.run(scenario())
    assert status in {400, 414}
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
