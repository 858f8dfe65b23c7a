"""Events and page probes shared by the captions tests."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from listend.daemon.events import TranscriptEvent, UtteranceEndEvent, event_id
from listend.daemon.plugin.source import PluginContext
from listend.plugins.captions_sink import CaptionsSink, CaptionsSinkConfig

_seq = itertools.count(1)
NOW = datetime(2026, 11, 28, 5, 0, tzinfo=UTC)


def said(
    text: str,
    *,
    final: bool = False,
    speech_final: bool = False,
    source: str = "hall",
    epoch: int = 1,
    channel: int = 0,
) -> TranscriptEvent:
    seq = next(_seq)
    return TranscriptEvent(
        id=event_id("t", source, epoch, seq),
        device="t",
        source=source,
        epoch=epoch,
        seq=seq,
        channel=channel,
        start=0.0,
        end=1.0,
        started_at=NOW,
        ended_at=NOW,
        text=text,
        is_final=final,
        speech_final=speech_final,
    )


def utterance_end(source: str = "hall", epoch: int = 1) -> UtteranceEndEvent:
    seq = next(_seq)
    return UtteranceEndEvent(
        id=event_id("t", source, epoch, seq),
        device="t",
        source=source,
        epoch=epoch,
        seq=seq,
        last_word_end=1.0,
        at=NOW,
    )


def make_sink(state_dir: Path, port: int, **options: Any) -> CaptionsSink:
    config = CaptionsSinkConfig(type="captions", listen=f"127.0.0.1:{port}", **options)
    return CaptionsSink("captions", config, PluginContext(device="t", state_dir=state_dir))


# The page's lines as the user sees them: committed text, interim text, whether it ended.
LINES_JS = """[...document.querySelectorAll('#captions .line')].map(el => ({
  src: el.dataset.source,
  final: el.querySelector('.final').textContent,
  interim: el.querySelector('.interim').textContent,
  done: el.classList.contains('done'),
}))"""


def lines_are(expected: list[tuple[str, str, bool]]) -> str:
    """JS: the page shows exactly these (final, interim, done) lines, oldest first."""
    want = [{"final": f, "interim": i, "done": d} for f, i, d in expected]
    return (
        f"JSON.stringify(({LINES_JS}).map(l => ({{final: l.final, interim: l.interim, "
        f"done: l.done}}))) === JSON.stringify({json.dumps(want)})"
    )


STYLE_JS = """(() => {
  const line = [...document.querySelectorAll('#captions .line')].pop();
  const style = (sel) => { const s = getComputedStyle(line.querySelector(sel));
    return {fontStyle: s.fontStyle, color: s.color, fontSize: s.fontSize}; };
  return {final: style('.final'), interim: style('.interim')};
})()"""
