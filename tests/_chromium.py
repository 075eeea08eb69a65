"""A headless Chromium driven over the DevTools protocol (a websocket, through aiohttp).

The tests of the report's HTML page open it in a real browser with this: the
system's Chromium (Debian's ``chromium``, or ``SENDCLOUD_CHROMIUM`` naming the
binary), started with a throw-away profile and every background service off, on a
DevTools port of its own. ``Browser.open(path)`` loads a page and returns what
happened: the load time the page itself measured, every request the page made,
console errors and uncaught exceptions; then ``screenshot()``, ``pdf()`` and
``evaluate()`` act on that page.

Where Chromium cannot be had, ``chromium_binary()`` skips the test with the reason,
unless ``SENDCLOUD_REQUIRE_CHROMIUM=1`` (set by CI once it installed Chromium):
then it fails, so CI never skips these tests silently.

Run as a module it writes the documentation's screenshot of a report page::

    python -m tests._chromium PAGE.html docs/report-page.png [--width 1200 --height 1700]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp

__all__ = ["Browser", "PageRun", "chromium_binary", "require_chromium"]

ENV_BINARY = "SENDCLOUD_CHROMIUM"
ENV_REQUIRE = "SENDCLOUD_REQUIRE_CHROMIUM"
_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def require_chromium() -> bool:
    """Whether a missing Chromium fails the tests instead of skipping them."""
    return os.environ.get(ENV_REQUIRE, "") not in ("", "0")


def chromium_binary() -> str | None:
    """The Chromium to run: ``SENDCLOUD_CHROMIUM``, else the first of the usual names on PATH."""
    named = os.environ.get(ENV_BINARY)
    if named:
        return named if Path(named).exists() or shutil.which(named) else None
    return next((found for name in _NAMES if (found := shutil.which(name))), None)


@dataclass
class PageRun:
    """What loading one page did."""

    url: str
    #: Milliseconds from the start of the navigation to the end of the load event, as the
    #: page measured them (``performance`` navigation timing).
    load_ms: float
    #: The same, measured from here: the command sent until the load event arrived.
    wall_ms: float
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Browser:
    """One headless Chromium process and one page of it (``async with Browser() as b``)."""

    def __init__(self, binary: str, *, width: int = 1280, height: int = 900) -> None:
        self.binary = binary
        self.width = width
        self.height = height
        self._profile = Path(tempfile.mkdtemp(prefix="sendcloud-chromium-"))
        self._process: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._event = asyncio.Event()

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            self.binary,
            *_FLAGS,
            f"--user-data-dir={self._profile}",
            f"--window-size={self.width},{self.height}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        port_file = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if self._process.returncode is not None:
                raise RuntimeError(f"{self.binary} exited with {self._process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.binary} did not open its DevTools port in 30 s")
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json()
        page = next(t for t in targets if t.get("type") == "page")
        self._socket = await self._session.ws_connect(
            page["webSocketDebuggerUrl"], max_msg_size=0, autoping=True
        )
        self._reader = asyncio.create_task(self._read())
        for domain in ("Page", "Runtime", "Log", "Network"):
            await self.send(f"{domain}.enable")
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
        )

    async def _read(self) -> None:
        assert self._socket is not None
        async for message in self._socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data:
                future = self._waiting.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                self.events.append(data)
                self._event.set()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(RuntimeError("the DevTools connection closed"))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result (an error answer raises ``RuntimeError``)."""
        assert self._socket is not None
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        await self._socket.send_str(json.dumps({"id": ident, "method": method, "params": params}))
        answer = await asyncio.wait_for(future, 60)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def _wait_for(self, method: str, since: int, within: float) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            for event in self.events[since:]:
                if event.get("method") == method:
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {method} within {within} s")
            self._event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), left)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited if a promise)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def open(self, path: Path, *, dark: bool = False, within: float = 60) -> PageRun:
        """Load ``path`` (absolute; file://) and wait for its load event; what the page did."""
        await self.send(
            "Emulation.setEmulatedMedia",
            features=[{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}],
        )
        url = path.as_uri()  # an absolute path: ValueError otherwise
        since = len(self.events)
        began = time.monotonic()
        await self.send("Page.navigate", url=url)
        await self._wait_for("Page.loadEventFired", since, within)
        wall_ms = (time.monotonic() - began) * 1000
        load_ms = await self.evaluate(
            "(() => { const n = performance.getEntriesByType('navigation')[0];"
            " return n.loadEventEnd > 0 ? n.loadEventEnd : n.duration; })()"
        )
        await asyncio.sleep(0.2)  # late console messages and requests arrive
        run = PageRun(url=url, load_ms=float(load_ms), wall_ms=wall_ms)
        for event in self.events[since:]:
            method, params = event.get("method"), event.get("params", {})
            if method == "Network.requestWillBeSent":
                run.requests.append(params["request"]["url"])
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                run.errors.append(f"exception: {details.get('text')} {details.get('exception')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                run.errors.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                run.errors.append(f"log: {params['entry'].get('text')}")
        return run

    async def screenshot(self, *, height: int | None = None) -> bytes:
        """A PNG of the page, ``height`` CSS pixels of it (default: all of it)."""
        metrics = await self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        full = int(size["height"])
        shown = min(full, height) if height else full
        data = await self.send(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": self.width, "height": shown, "scale": 1},
        )
        return base64.b64decode(data["data"])

    async def pdf(self) -> bytes:
        """The page printed on A4 (as the browser's print dialog would, print styles on)."""
        data = await self.send(
            "Page.printToPDF", paperWidth=8.27, paperHeight=11.69, preferCSSPageSize=True
        )
        return base64.b64decode(data["data"])

    async def close(self) -> None:
        """Close the connection, stop the process (it is killed after 5 s), remove the profile."""
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._reader, 5)
        if self._session is not None:
            await self._session.close()
        process = self._process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()
        shutil.rmtree(self._profile, ignore_errors=True)


@contextlib.asynccontextmanager
async def browser(width: int = 1280, height: int = 900) -> AsyncIterator[Browser]:
    """A started ``Browser`` of the system's Chromium (``RuntimeError`` without one)."""
    binary = chromium_binary()
    if binary is None:
        raise RuntimeError("no Chromium found (install it, or set SENDCLOUD_CHROMIUM)")
    async with Browser(binary, width=width, height=height) as started:
        yield started


async def _screenshot(page: Path, width: int, height: int, dark: bool) -> tuple[bytes, PageRun]:
    async with browser(width=width, height=900) as chromium:
        run = await chromium.open(page, dark=dark)
        if run.errors:
            raise SystemExit(f"the page logged errors: {run.errors}")
        return await chromium.screenshot(height=height), run


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests._chromium", description=__doc__)
    parser.add_argument("page", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=1700)
    parser.add_argument("--dark", action="store_true")
    args = parser.parse_args()
    png, run = asyncio.run(_screenshot(args.page, args.width, args.height, args.dark))
    args.out.write_bytes(png)
    print(f"wrote {args.out} ({len(png):,} bytes; the page loaded in {run.load_ms:.0f} ms)")


if __name__ == "__main__":
    main()
