"""The captions page in real headless Chromium, fed by the captions sink in-process."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.browser import Page, open_page
from tests.support.captions import LINES_JS, STYLE_JS, lines_are, make_sink
from tests.support.events import said, utterance_end
from tests.support.net import free_port

pytestmark = pytest.mark.xdist_group("chromium")

LIVE = "document.body.dataset.state === 'live'"
BADGE_SHOWN = "document.getElementById('status').getBoundingClientRect().width > 0"


def no_errors(page: Page) -> None:
    assert page.errors == [], page.errors


def test_interim_is_overwritten_final_committed_new_line_on_speech_final(chromium, tmp_path):
    async def scenario() -> None:
        sink = make_sink(tmp_path, free_port())
        await sink.start()
        try:
            async with open_page(chromium, sink.url) as page:
                await page.wait_for(LIVE)
                await sink.deliver([said("turn on")])
                await page.wait_for(lines_are([("", "turn on", False)]))
                await sink.deliver([said("turn on the kitch")])
                await page.wait_for(lines_are([("", "turn on the kitch", False)]))
                style = await page.evaluate(STYLE_JS)
                assert style["interim"]["fontStyle"] == "italic"
                assert style["final"]["fontStyle"] == "normal"
                assert style["interim"]["color"] != style["final"]["color"]

                await sink.deliver([said("Turn on the kitchen", final=True)])
                await page.wait_for(lines_are([("Turn on the kitchen", "", False)]))
                await sink.deliver([said("lights ple")])
                await page.wait_for(lines_are([("Turn on the kitchen", "lights ple", False)]))
                await sink.deliver([said("lights, please.", final=True, speech_final=True)])
                await page.wait_for(lines_are([("Turn on the kitchen lights, please.", "", True)]))

                await sink.deliver([said("thank")])
                await page.wait_for(
                    lines_are(
                        [("Turn on the kitchen lights, please.", "", True), ("", "thank", False)]
                    )
                )
                await sink.deliver([said("Thank you.", final=True), utterance_end()])
                await sink.deliver([said("and the")])
                await page.wait_for(
                    lines_are(
                        [
                            ("Turn on the kitchen lights, please.", "", True),
                            ("Thank you.", "", True),
                            ("", "and the", False),
                        ]
                    )
                )
                await page.screenshot("captions-dark.png")
                no_errors(page)
        finally:
            await sink.stop()

    asyncio.run(scenario())


def test_source_pages_and_combined_view(chromium, tmp_path):
    async def scenario() -> None:
        sink = make_sink(tmp_path, free_port(), theme="light", lines=4)
        await sink.start()
        try:
            # Committed before any page connects: a new page gets them as context.
            await sink.deliver([said("Good morning.", final=True, speech_final=True)])
            async with (
                open_page(chromium, sink.url) as combined,
                open_page(chromium, f"{sink.url}source/hall") as hall,
                open_page(chromium, f"{sink.url}source/lobby") as lobby,
            ):
                for page in (combined, hall, lobby):
                    await page.wait_for(LIVE)
                await hall.wait_for(lines_are([("Good morning.", "", True)]))
                await sink.deliver(
                    [
                        said("Doors close in", final=True, source="lobby"),
                        said("welcome to the", source="hall"),
                        said("five minutes", source="lobby"),
                    ]
                )
                await combined.wait_for(
                    lines_are(
                        [
                            ("Good morning.", "", True),
                            ("Doors close in", "five minutes", False),
                            ("", "welcome to the", False),
                        ]
                    )
                )
                await hall.wait_for(
                    lines_are([("Good morning.", "", True), ("", "welcome to the", False)])
                )
                await lobby.wait_for(lines_are([("Doors close in", "five minutes", False)]))
                # Labels say which source spoke only where several share one page.
                labels = "[...document.querySelectorAll('.src')].map(e => e.offsetParent !== null)"
                assert all(await combined.evaluate(labels))
                assert not any(await hall.evaluate(labels))
                assert await hall.evaluate("document.title") == "Live captions \u2014 hall"
                await combined.screenshot("captions-combined-light.png")
                for page in (combined, hall, lobby):
                    no_errors(page)
        finally:
            await sink.stop()

    asyncio.run(scenario())


def test_page_recovers_without_reload_when_the_server_restarts(chromium, tmp_path):
    async def scenario() -> None:
        port = free_port()
        sink = make_sink(tmp_path, port)
        await sink.start()
        async with open_page(chromium, sink.url) as page:
            await page.wait_for(LIVE)
            await page.evaluate("window.sameDocument = true")
            await sink.deliver([said("First words.", final=True, speech_final=True)])
            await sink.deliver([said("never confirm")])
            await page.wait_for(
                lines_are([("First words.", "", True), ("", "never confirm", False)])
            )
            first_boot = await page.evaluate("document.body.dataset.boot")
            await sink.stop()
            await page.wait_for("document.body.dataset.state === 'reconnecting'")
            assert await page.evaluate(BADGE_SHOWN)
            no_errors(page)  # nothing logged until the browser's own failed reconnects
            await asyncio.sleep(1.0)  # let it fail a few reconnects

            sink = make_sink(tmp_path, port, theme="light")  # e.g. a reloaded configuration
            await sink.start()
            try:
                await page.wait_for(LIVE)
                assert await page.evaluate("document.documentElement.dataset.theme") == "light"
                assert await page.evaluate("window.sameDocument") is True
                assert await page.evaluate("document.body.dataset.boot") != first_boot
                assert not await page.evaluate(BADGE_SHOWN)
                await sink.deliver([said("Back again.", final=True, speech_final=True)])
                # Old text stays; the hypothesis the old run never confirmed is gone.
                await page.wait_for(
                    lines_are([("First words.", "", True), ("Back again.", "", True)])
                )
                await page.screenshot("captions-after-restart.png")
                # Only the browser's own connection-refused reports while the server was down.
                assert all("ERR_CONNECTION_REFUSED" in e for e in page.errors), page.errors
            finally:
                await sink.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_page_passes_axe_and_honours_lines_and_font_size(chromium, tmp_path, theme):
    async def scenario() -> None:
        sink = make_sink(tmp_path, free_port(), theme=theme, lines=2, font_size="40px", lang="de")
        await sink.start()
        try:
            async with open_page(chromium, sink.url) as page:
                await page.wait_for(LIVE)
                committed = [f"Zeile {n} ist fertig." for n in range(1, 6)]
                await sink.deliver(
                    [said(text, final=True, speech_final=True) for text in committed]
                    + [said("Zeile sechs", final=True), said("ist noch offen", source="lobby")]
                )
                await page.wait_for(f"({LINES_JS}).length === 7")
                style = await page.evaluate(STYLE_JS)
                assert style["final"]["fontSize"] == "40px"
                assert await page.evaluate("document.documentElement.lang") == "de"
                assert await page.evaluate("document.documentElement.dataset.theme") == theme
                # Only the last `lines` rows are in view: auto-scrolled to the end.
                visible = """(() => { const box = document.getElementById('captions')
                    .getBoundingClientRect();
                  return [...document.querySelectorAll('#captions .line')].filter(el => {
                    const r = el.getBoundingClientRect();
                    return r.bottom > box.top + 1 && r.top < box.bottom - 1; })
                    .map(el => el.textContent); })()"""
                # (smooth scrolling: wait for it to settle on the last two rows)
                await page.wait_for(
                    f"(v => v.length === 2 && v[0].endsWith('Zeile sechs')"
                    f" && v[1].endsWith('ist noch offen'))({visible})"
                )
                live = await page.evaluate(
                    "document.getElementById('captions').getAttribute('aria-live')"
                )
                assert live == "polite"
                axe = await page.axe(
                    ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
                )
                assert axe["violations"] == [], axe["violations"]
                assert "color-contrast" not in axe["incomplete"], axe["incomplete"]
                checked = " ".join(axe["passed"]["color-contrast"])
                assert ".interim" in checked, checked
                assert ".final" in checked, checked
                assert ".src" in checked, checked
                # The reconnecting badge has to be readable too.
                await sink.stop()
                await page.wait_for("document.body.dataset.state === 'reconnecting'")
                axe = await page.axe(["wcag2aa"])
                assert axe["violations"] == [], axe["violations"]
                assert "#status" in axe["passed"]["color-contrast"], axe["passed"]
                await page.screenshot(f"captions-axe-{theme}.png")
                assert all("ERR_CONNECTION_REFUSED" in e for e in page.errors), page.errors
        finally:
            await sink.stop()

    asyncio.run(scenario())


def test_query_overrides_and_reduced_motion(chromium, tmp_path):
    async def scenario() -> None:
        sink = make_sink(tmp_path, free_port(), theme="dark")
        await sink.start()
        try:
            async with open_page(chromium) as page:
                await page.send(
                    "Emulation.setEmulatedMedia",
                    {"features": [{"name": "prefers-reduced-motion", "value": "reduce"}]},
                )
                await page.navigate(f"{sink.url}?theme=light&lines=5&font_size=3rem")
                await page.wait_for(LIVE)
                assert await page.evaluate("document.documentElement.dataset.theme") == "light"
                behavior = "getComputedStyle(document.getElementById('captions')).scrollBehavior"
                assert await page.evaluate(behavior) == "auto"
                await sink.deliver([said("Hello", final=True)])
                await page.wait_for(lines_are([("Hello", "", False)]))
                assert (await page.evaluate(STYLE_JS))["final"]["fontSize"] == "48px"
                # Bad values are ignored, not applied.
                await page.navigate(f"{sink.url}?theme=neon&font_size=expression(1)")
                await page.wait_for(LIVE)
                assert await page.evaluate("document.documentElement.dataset.theme") == "dark"
                no_errors(page)
        finally:
            await sink.stop()

    asyncio.run(scenario())
