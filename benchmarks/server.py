"""The benchmark server: a local aiohttp server in its own process, serving pre-rendered pages.

    python -m benchmarks.server --records 200000 --page-size 100 [--delay-ms 20] [--seed 1]

It binds 127.0.0.1 on a free port, renders every page once (body bytes and an
absolute ``Link: <…>; rel="next"`` header whose cursor is percent-encoded, ``+``
as ``%2B``), then prints the port alone on one stdout line and serves until it
is terminated. Per request it only looks the cursor up in a dict, so the server
costs little next to any client.

Routes:

* ``GET /api/v3/integrations/logs?page_size=N`` — the first page;
* ``GET /api/v3/integrations/logs?cursor=…&page_size=N`` — the page after that cursor;
* ``GET /__stats`` — JSON counters (no auth), read by the runner for sanity checks.

A request without an ``Authorization: Basic …`` header gets 401; a ``page_size``
other than the one rendered, or an unknown cursor (for example a ``+`` sent
unencoded, which decodes to a space), gets a JSON:API 400, so a client that
builds URLs wrongly fails verification instead of passing silently.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys
import time
from urllib.parse import quote

from aiohttp import web

from .data import generate_logs, render_page

__all__ = ["PageStore", "main"]

LOGS_PATH = "/api/v3/integrations/logs"


class PageStore:
    """Pre-rendered pages and the cursor → page index map."""

    def __init__(self, records: int, page_size: int, seed: int, origin: str) -> None:
        self.page_size = page_size
        self.page_size_text = str(page_size)
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.index: dict[str, int] = {}
        self.records = records
        self.bytes = 0
        link_base = f"{origin}{LOGS_PATH}"
        logs = generate_logs(records, seed)
        page_number = 0
        remaining = records
        while remaining > 0:
            take = min(page_size, remaining)
            items = [next(logs) for _ in range(take)]
            remaining -= take
            body = render_page(items)
            self.bodies.append(body)
            self.bytes += len(body)
            headers = {"Content-Type": "application/json"}
            if remaining > 0:
                cursor = items[-1]["created_at"]
                self.index[cursor] = page_number + 1
                next_url = f"{link_base}?cursor={quote(cursor, safe='')}&page_size={page_size}"
                headers["Link"] = f'<{next_url}>; rel="next"'
            self.headers.append(headers)
            page_number += 1


def _error(status: int, code: str, detail: str) -> web.Response:
    body = {"errors": [{"status": status, "code": code, "detail": detail}]}
    return web.json_response(body, status=status)


class Handler:
    """The request handler of the low-level ``aiohttp.web.Server`` (no router, no middlewares)."""

    def __init__(self, store: PageStore, delay: float) -> None:
        self.store = store
        self.delay = delay
        self.requests = 0
        self.rejected = 0
        self.started = time.monotonic()

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path != LOGS_PATH:
            if request.path == "/__stats":
                return web.json_response(self.stats())
            self.rejected += 1
            return _error(404, "not_found", f"no route for {request.path}")
        self.requests += 1
        if not request.headers.get("Authorization", "").startswith("Basic "):
            self.rejected += 1
            return _error(401, "authentication_failed", "missing Basic credentials")
        store = self.store
        query = request.query
        if query.get("page_size") != store.page_size_text:
            self.rejected += 1
            return _error(
                400, "invalid", f"page_size must be {store.page_size} (this server's pages)"
            )
        cursor = query.get("cursor")
        if cursor is None:
            page = 0
        else:
            found = store.index.get(cursor)
            if found is None:
                self.rejected += 1
                return _error(400, "invalid", f"unknown cursor {cursor!r}")
            page = found
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(body=store.bodies[page], headers=store.headers[page])

    def stats(self) -> dict[str, object]:
        store = self.store
        return {
            "records": store.records,
            "pages": len(store.bodies),
            "page_size": store.page_size,
            "bytes": store.bytes,
            "requests": self.requests,
            "rejected": self.rejected,
            "cpu_seconds": time.process_time(),
        }


async def serve(records: int, page_size: int, seed: int, delay_ms: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    started = time.perf_counter()
    store = PageStore(records, page_size, seed, f"http://127.0.0.1:{port}")
    handler = Handler(store, delay_ms / 1000)
    runner = web.ServerRunner(web.Server(handler), handle_signals=True)
    await runner.setup()
    site = web.SockSite(runner, sock)
    await site.start()
    print(
        json.dumps({**handler.stats(), "render_seconds": round(time.perf_counter() - started, 2)}),
        file=sys.stderr,
        flush=True,
    )
    print(port, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve pre-rendered integration-log pages.")
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="added before each page")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt, web.GracefulExit):
        asyncio.run(serve(args.records, args.page_size, args.seed, args.delay_ms))


if __name__ == "__main__":
    main()
