"""The captions page on real screen sizes in headless Chromium: whole rows only, where the
kiosk wants them, the latest lines at once on (re)connect; an unknown source is a 404 that
lists the sources. Screenshots at 720p and 1080p in both themes go to tests/artifacts/."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.support.browser import open_page
from tests.support.captions import LINES_JS, make_sink
from tests.support.events import said
from tests.support.net import free_port

pytestmark = pytest.mark.xdist_group("chromium")

LIVE = "document.body.dataset.state === 'live'"

# Every text row (a line may wrap into several) that shows in the block, and whether each is
# whole; the block's own box and how many rows it was laid out for.
ROWS_JS = """(() => {
  const board = document.getElementById('captions');
  const box = board.getBoundingClientRect();
  const rows = [];
  for (const line of board.querySelectorAll('.line')) {
    const rects = [];
    for (const part of line.querySelectorAll('.final, .interim')) {  // the text, not the label
      const range = document.createRange();
      range.selectNodeContents(part);
      rects.push(...[...range.getClientRects()].filter(r => r.height > 0));
    }
    const seen = [];
    for (const r of rects) {
      const middle = (r.top + r.bottom) / 2;
      if (seen.some(m => Math.abs(m - middle) < 4)) continue;  // the same row
      seen.push(middle);
      if (r.bottom > box.top + 0.5 && r.top < box.bottom - 0.5) {
        rows.push({top: r.top, bottom: r.bottom,
                   whole: r.top >= box.top - 0.5 && r.bottom <= box.bottom + 0.5,
                   text: line.querySelector('.final').textContent
                         + line.querySelector('.interim').textContent});
      }
    }
  }
  return {box: {top: box.top, bottom: box.bottom, height: box.height},
          laidOut: Number(board.dataset.rows), rows,
          viewport: window.innerHeight, scrollTop: board.scrollTop};
})()"""

LONG = (
    "This sentence is long enough to wrap onto a second row of the captions block on "
    "every screen size we check, and then some more words to be sure."
)


async def set_screen(page, width: int, height: int) -> None:
    await page.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


def check_whole_rows(layout: dict, expected_rows: int | None) -> None:
    rows = layout["rows"]
    assert rows, layout
    assert all(row["whole"] for row in rows), layout
    if expected_rows is not None:
        assert layout["laidOut"] == expected_rows
    assert len(rows) == layout["laidOut"], layout  # the block is full: exactly N rows show
    assert layout["scrollTop"] == 0  # nothing scrolls: the newest row is simply at the bottom


@pytest.mark.parametrize("theme", ["dark", "light"])
@pytest.mark.parametrize(("width", "height"), [(1280, 720), (1920, 1080)])
def test_whole_rows_at_720p_and_1080p(chromium, tmp_path, theme, width, height):
    async def scenario() -> None:
        sink = make_sink(tmp_path, free_port(), theme=theme)
        await sink.start()
        try:
            events = [said(f"Line {n} is done.", final=True, speech_final=True) for n in range(8)]
            events.append(said(LONG, final=True, speech_final=True))
            events.append(said("and the last words", source="lobby"))
            await sink.deliver(events)
            async with open_page(chromium) as page:
                await set_screen(page, width, height)
                for position, rows in (("bottom", 3), ("middle", 3), ("full", None)):
                    await page.navigate(f"{sink.url}?position={position}")
                    await page.wait_for(LIVE)
                    await page.wait_for(f"({LINES_JS}).length === 10")
                    layout = await page.evaluate(ROWS_JS)
                    check_whole_rows(layout, rows)
                    assert layout["rows"][-1]["text"].endswith("and the last words")
                    box = layout["box"]
                    if position == "bottom":
                        assert box["bottom"] > 0.9 * height
                    elif position == "middle":
                        middle = (box["top"] + box["bottom"]) / 2
                        assert abs(middle - height / 2) < 0.05 * height
                    else:
                        assert box["height"] > 0.8 * height  # uses the screen
                        assert layout["laidOut"] > 3
                    await page.screenshot(f"captions-{height}p-{theme}-{position}.png")
                assert page.errors == [], page.errors
        finally:
            await sink.stop()

    asyncio.run(scenario())


def test_a_reconnecting_page_shows_the_latest_lines_at_once(chromium, tmp_path):
    async def scenario() -> None:
        sink = make_sink(tmp_path, free_port(), lines=2)
        await sink.start()
        try:
            await sink.deliver(
                [said(f"History line {n}.", final=True, speech_final=True) for n in range(50)]
            )
            async with open_page(chromium) as page:
                await set_screen(page, 1280, 720)
                await page.navigate(sink.url)
                await page.wait_for(f"({LINES_JS}).length === 50")
                # the first look after the history arrived already shows its end
                layout = await page.evaluate(ROWS_JS)
                check_whole_rows(layout, 2)
                assert [row["text"] for row in layout["rows"]] == [
                    "History line 48.",
                    "History line 49.",
                ]
        finally:
            await sink.stop()

    asyncio.run(scenario())


def test_unknown_source_is_a_404_listing_the_sources(tmp_path):
    async def scenario() -> None:
        sink = make_sink(tmp_path, free_port(), sources=("hall", "lobby"))
        await sink.start()
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{sink.url}source/kitchen") as response:
                    assert response.status == 404
                    assert response.content_type == "text/html"
                    body = await response.text()
                assert "No source kitchen" in body
                assert 'href="/source/hall"' in body
                assert 'href="/source/lobby"' in body
                async with http.get(f"{sink.url}source/hall") as response:
                    assert response.status == 200
                async with http.get(f"{sink.url}source/%3Cscript%3E") as response:
                    assert response.status == 404
                    assert "<script>" not in await response.text()
        finally:
            await sink.stop()

    asyncio.run(scenario())
