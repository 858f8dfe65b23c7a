"""The captions sink as its tests make it, and the page probes they evaluate in Chromium."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from listend.daemon.plugin.source import PluginContext
from listend.plugins.captions_sink import CaptionsSink, CaptionsSinkConfig


def make_sink(
    state_dir: Path, port: int, sources: tuple[str, ...] = ("hall", "lobby"), **options: Any
) -> CaptionsSink:
    """A captions sink on ``port``, routed ``sources`` (what its /source/ pages may show)."""
    config = CaptionsSinkConfig(type="captions", listen=f"127.0.0.1:{port}", **options)
    context = PluginContext(device="t", state_dir=state_dir, sources=sources)
    return CaptionsSink("captions", config, context)


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
