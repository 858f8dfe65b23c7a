"""Headless Chromium (Debian's ``chromium``) driven over the DevTools protocol, for page tests.

No browser download and no network: the browser gets flags that keep it off everything but
127.0.0.1, and a fresh profile per process.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.paths import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"
AXE = ROOT / "tests" / "vendor" / "axe-core" / "axe.min.js"

CHROMIUM_FLAGS = [
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider",
    "--metrics-recording-only",
    "--password-store=basic",
    "--mute-audio",
    "--hide-scrollbars",
    "--window-size=1280,720",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


class BrowserError(AssertionError):
    pass


class Chromium:
    """One headless Chromium process; pages are opened in it with :func:`open_page`."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, timeout: float = 60.0) -> None:
        binary = shutil.which("chromium") or "/usr/bin/chromium"
        if not Path(binary).exists():
            raise BrowserError("chromium is not installed (scripts/setup-system.sh installs it)")
        flags = [*CHROMIUM_FLAGS, f"--user-data-dir={self.profile}"]
        if os.geteuid() == 0:
            flags.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self.log = self.profile.parent / f"{self.profile.name}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([binary, *flags, "about:blank"], stdout=log, stderr=log)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrowserError(f"chromium exited with {self.proc.returncode}; see {self.log}")
            with contextlib.suppress(OSError, ValueError, IndexError):
                self.port = int(port_file.read_text().splitlines()[0])
                return
            time.sleep(0.05)
        self.stop()
        raise BrowserError(f"chromium did not open its DevTools port in {timeout}s")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


@dataclass
class Page:
    """One tab: commands over its DevTools WebSocket, console and errors collected."""

    ws: aiohttp.ClientWebSocketResponse
    console: list[dict[str, Any]] = field(default_factory=list)  # every console message
    errors: list[str] = field(default_factory=list)  # exceptions, console/log errors
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _waiting: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        call_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = future
        await self.ws.send_str(
            json.dumps({"id": call_id, "method": method, "params": params or {}})
        )
        async with asyncio.timeout(60):
            reply = await future
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            if "id" in data:
                future = self._waiting.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                self._event(data["method"], data.get("params", {}))

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.console.append({"type": params["type"], "text": text})
            if params["type"] in {"error", "assert"}:
                self.errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            described = details.get("exception", {}).get("description", details.get("text"))
            self.errors.append(f"exception: {described}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.errors.append(f"log[{entry['source']}]: {entry['text']} {entry.get('url', '')}")

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """Poll until ``expression`` is truthy; return it (generous deadline: CPU is shared)."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.05)
        raise BrowserError(f"still falsy after {timeout}s: {expression} (last: {value!r})")

    async def navigate(self, url: str) -> None:
        await self.send("Page.navigate", {"url": url})
        await self.wait_for("document.readyState === 'complete'")

    async def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = await self.send("Page.captureScreenshot", {"format": "png"})
        path = ARTIFACTS / name
        path.write_bytes(base64.b64decode(shot["data"]))
        print(f"screenshot: {path}")
        return path

    async def axe(self, tags: list[str]) -> dict[str, Any]:
        """Run the vendored axe-core on the page.

        Returns ``violations`` (id, impact, help, failing nodes) and, per rule id, the elements
        it ``passed`` and those it could not decide (``incomplete``).
        """
        await self.evaluate(AXE.read_text(encoding="utf-8"))
        targets = (
            "(rs => Object.fromEntries(rs.map(r => [r.id, r.nodes.map(n => n.target.join(' '))])))"
        )
        script = f"""axe.run(document, {{runOnly: {{type: 'tag', values: {json.dumps(tags)}}}}})
          .then(r => ({{
            violations: r.violations.map(v => ({{id: v.id, impact: v.impact, help: v.help,
              nodes: v.nodes.map(n => n.failureSummary + ' @ ' + n.target.join(' '))}})),
            passed: {targets}(r.passes),
            incomplete: {targets}(r.incomplete),
          }}))"""
        results: dict[str, Any] = await self.evaluate(script)
        return results


@contextlib.asynccontextmanager
async def open_page(browser: Chromium, url: str = "about:blank") -> AsyncIterator[Page]:
    """A new tab with Runtime/Log/Page events on, navigated to ``url``; closed on exit."""
    base = f"http://127.0.0.1:{browser.port}"
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{base}/json/new?about:blank") as response:
            target = await response.json()
        ws = await http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
        page = Page(ws)
        page._reader = asyncio.create_task(page._read())
        try:
            for domain in ("Runtime", "Log", "Page"):
                await page.send(f"{domain}.enable")
            if url != "about:blank":
                await page.navigate(url)
            yield page
        finally:
            with contextlib.suppress(Exception):
                await page.send("Page.close")
            await ws.close()
            page._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await page._reader
