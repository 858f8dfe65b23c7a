"""End to end: scripted audio -> listend daemon (file source, real Deepgram SDK) -> the
Deepgram-protocol test server -> captions sink -> the page in headless Chromium, across a
daemon restart."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from listend.testing import DeepgramTestServer, Script
from tests.support.browser import BrowserError, Page, open_page
from tests.support.captions import LINES_JS
from tests.support.cli import listend_cmd
from tests.support.net import free_port, wait_for_port
from tests.support.paths import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("chromium")]

LIVE = "document.body.dataset.state === 'live'"

# Every change of the captions as the page showed it, with the computed styles: polling could
# miss an interim that lives for 100 ms, a MutationObserver cannot.
RECORD_JS = """(() => {
  window.captionStates = [];
  const snapshot = () => {
    const lines = [...document.querySelectorAll('#captions .line')].map(el => {
      const interim = getComputedStyle(el.querySelector('.interim'));
      const final = getComputedStyle(el.querySelector('.final'));
      return {final: el.querySelector('.final').textContent,
              interim: el.querySelector('.interim').textContent,
              done: el.classList.contains('done'),
              interimStyle: [interim.fontStyle, interim.color],
              finalStyle: [final.fontStyle, final.color]};
    });
    if (JSON.stringify(lines) !== JSON.stringify(window.captionStates.at(-1))) {
      window.captionStates.push(lines);
    }
  };
  new MutationObserver(snapshot).observe(document.getElementById('captions'),
    {subtree: true, childList: true, characterData: true, attributes: true});
  return true;
})()"""


def write_speech(path: Path, *utterances: str) -> None:
    script = Script().silence(2.0)  # time for the page to connect before the first word
    for text in utterances:
        script.say(text)
    script.silence(60.0).write_wav(path)  # the test stops the daemon long before the end


def start_daemon(config: Path, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            listend_cmd("run", str(config)), stdout=out, stderr=out, env=env, cwd=ROOT
        )


async def stop_daemon(proc: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM: the daemon drains (finalizes the stream, closes the pages) and exits 0."""
    proc.send_signal(signal.SIGTERM)
    try:
        code = await asyncio.to_thread(proc.wait, 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        pytest.fail(f"the daemon did not stop on SIGTERM; log:\n{log.read_text()}")
    assert code == 0, log.read_text()


async def wait_for_lines(page: Page, log: Path, *texts: str) -> None:
    """Wait until the page shows exactly these committed lines and nothing open."""
    want = json.dumps([[text, "", True] for text in texts], separators=(",", ":"))
    shown = f"JSON.stringify(({LINES_JS}).map(l => [l.final, l.interim, l.done]))"
    try:
        await page.wait_for(f"{shown} === {json.dumps(want)}", timeout=60)
    except BrowserError:
        lines = await page.evaluate(LINES_JS)
        pytest.fail(f"page shows {lines}, wanted {texts}; daemon log:\n{log.read_text()}")


def line_history(states: list[list[dict[str, Any]]], index: int) -> list[tuple[str, str, bool]]:
    """How line ``index`` changed, state by state."""
    return [
        (state[index]["final"], state[index]["interim"], state[index]["done"])
        for state in states
        if len(state) > index
    ]


def test_page_follows_the_daemon_and_recovers_after_a_restart(chromium, tmp_path):
    audio = tmp_path / "speech.wav"
    write_speech(audio, "turn on the kitchen lights", "good night")
    port = free_port()
    log = tmp_path / "listend.log"

    async def scenario() -> None:
        async with DeepgramTestServer() as dg:
            config = tmp_path / "listend.yaml"
            config.write_text(
                f"device: kiosk\nstate_dir: {tmp_path / 'state'}\n"
                f"deepgram:\n  url: {dg.url}\n  api_key: $env:LISTEND_TEST_KEY\n"
                "  options: {interim_results: true, endpointing: 300}\n"
                f"sources:\n  hall:\n    type: file\n    path: {audio}\n"
                f"sinks:\n  screen:\n    type: captions\n    listen: 127.0.0.1:{port}\n"
            )
            env = {**os.environ, "LISTEND_TEST_KEY": dg.api_key}
            daemon = start_daemon(config, log, env)
            try:
                await asyncio.to_thread(wait_for_port, port, 60)
                async with open_page(chromium, f"http://127.0.0.1:{port}/") as page:
                    await page.evaluate(RECORD_JS)
                    await page.evaluate("window.sameDocument = true")
                    await page.wait_for(LIVE)
                    await wait_for_lines(page, log, "turn on the kitchen lights", "good night")
                    states = await page.evaluate("window.captionStates")

                    # Interim text appeared styled as interim, growing word by word...
                    first = line_history(states, 0)
                    assert ("", "turn on the", False) in first, first
                    # ... was replaced by the final text, and the line ended (speech_final).
                    assert first[-1] == ("turn on the kitchen lights", "", True), first
                    assert first.index(("", "turn on the", False)) < len(first) - 1
                    second = line_history(states, 1)
                    assert second[0][1:] == ("good", False), second  # a new line, interim
                    for state in states:
                        for line in state:
                            if line["interim"]:
                                assert line["interimStyle"][0] == "italic", line
                                assert line["interimStyle"][1] != line["finalStyle"][1], line
                            assert line["finalStyle"][0] == "normal", line
                    assert page.errors == [], page.errors

                    # Restart the daemon under the page, with new words in its source.
                    await stop_daemon(daemon, log)
                    await page.wait_for("document.body.dataset.state === 'reconnecting'")
                    write_speech(audio, "hello again")
                    daemon = start_daemon(config, log, env)
                    await page.wait_for(LIVE, timeout=60)
                    await wait_for_lines(
                        page, log, "turn on the kitchen lights", "good night", "hello again"
                    )
                    assert await page.evaluate("window.sameDocument") is True  # no reload
                    await page.screenshot("captions-e2e-after-restart.png")
                    # Nothing but the browser's reports of refused reconnects while it was down.
                    assert all("ERR_CONNECTION_REFUSED" in e for e in page.errors), page.errors
                    assert len(dg.connections) == 2  # one stream per daemon run
            finally:
                if daemon.poll() is None:
                    await stop_daemon(daemon, log)

    asyncio.run(scenario())
