"""The stdout sink: live captions as a terminal shows them; JSON lines when not a terminal."""

from __future__ import annotations

import asyncio
import json
import re

from listend.plugins.stdout_sink import CaptionRenderer
from tests.support.cli import DaemonProcess
from tests.support.events import transcript, utterance_end
from tests.support.outbox import seed_outbox
from tests.support.waiting import wait_until

ESCAPES = re.compile(r"\x1b\[(\d*)m")


def screen(output: str) -> list[str]:
    """What a terminal shows after ``output``: \\r returns, ESC[K erases, \\n starts a row."""
    rows = [""]
    column = 0
    i = 0
    output = ESCAPES.sub("", output)  # colours do not move the cursor
    while i < len(output):
        if output.startswith("\x1b[K", i):
            rows[-1] = rows[-1][:column]
            i += 3
            continue
        char = output[i]
        if char == "\r":
            column = 0
        elif char == "\n":
            rows.append("")
            column = 0
        else:
            row = rows[-1]
            rows[-1] = row[:column] + char + row[column + 1 :]
            column += 1
        i += 1
    return rows


def play(renderer: CaptionRenderer, events) -> str:
    return "".join(renderer.render(event) for event in events)


def test_interims_are_overwritten_and_finals_committed():
    r = CaptionRenderer(width=lambda: 80)
    out = play(
        r,
        [
            transcript("hall", 0, "turn", is_final=False),
            transcript("hall", 1, "turn on the", is_final=False),
            transcript("hall", 2, "turn on the lights", speech_final=False),
            transcript("hall", 3, "in the", is_final=False),
        ],
    )
    assert screen(out) == ["[hall] turn on the lights in the"]
    assert "\x1b[2min the" in out  # the interim part is dimmed
    out += play(r, [transcript("hall", 4, "in the kitchen")])  # speech_final ends the line
    assert screen(out) == ["[hall] turn on the lights in the kitchen", ""]
    out += play(r, [transcript("hall", 5, "thanks", is_final=False)])
    assert screen(out) == ["[hall] turn on the lights in the kitchen", "[hall] thanks"]
    out += r.close()
    assert screen(out)[-1] == ""  # an unconfirmed interim is wiped, the prompt starts clean


def test_long_lines_continue_on_the_next_row():
    r = CaptionRenderer(width=lambda: 40)
    words = [transcript("hall", i, f"segment number {i}", speech_final=False) for i in range(4)]
    out = play(r, [*words, utterance_end("hall", 9)])
    rows = [row for row in screen(out) if row]
    assert all(len(row) < 40 for row in rows)
    assert " ".join(row.removeprefix("[hall] ") for row in rows) == " ".join(w.text for w in words)


def test_another_source_starts_its_own_line():
    r = CaptionRenderer(width=lambda: 80)
    out = play(
        r,
        [
            transcript("hall", 0, "hello", speech_final=False),
            transcript("door", 0, "who is there", is_final=False),
            transcript("door", 1, "who is there"),
        ],
    )
    assert screen(out) == ["[hall] hello", "[door] who is there", ""]


def test_not_a_terminal_gives_json_lines_from_the_daemon(tmp_path):
    """``listend run`` with stdout piped: the stored events come out as JSON lines."""
    state = tmp_path / "state"
    events = [transcript("hall", seq, f"line {seq}") for seq in range(3)]
    asyncio.run(seed_outbox(state, "console", events))
    config = tmp_path / "listend.yaml"
    config.write_text(
        f"device: dev\nstate_dir: {state}\nsinks:\n  console:\n    type: stdout\n"
        "sources: {idle: {type: file, path: config/samples/hello.wav, enabled: false}}\n"
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        wait_until(lambda: daemon.output().count("\n") >= 3, 20, "three JSON lines")
    finally:
        assert daemon.terminate() == 0, daemon.log()
    lines = [json.loads(line) for line in daemon.output().splitlines()]
    assert [line["id"] for line in lines] == [e.id for e in events]


HOSTILE = "lights\x1b]0;owned\x07 on\x00\x9b2J \u202eevil\u202c\tnow\r\nok"


def test_control_characters_never_reach_the_terminal():
    """ESC/OSC sequences, NUL, C1 (CSI 0x9b) and bidi overrides from the network are removed;
    the only escapes written are the renderer's own."""
    out = play(CaptionRenderer(width=lambda: 80), [transcript("hall", 0, HOSTILE)])
    own = out.replace("\r\x1b[K", "").replace("\x1b[2m", "").replace("\x1b[0m", "")
    assert not any(ord(c) < 0x20 and c != "\n" for c in own), repr(own)
    assert not any(0x7F <= ord(c) < 0xA0 or c in "\u202e\u202c" for c in own), repr(own)
    assert "lights]0;owned on2J evil now ok" in own
