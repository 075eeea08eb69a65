"""What every contender shares: arguments, verification, timing and the JSON result line.

A contender is a script run in its own process by the runner::

    python -m benchmarks.contenders.NAME BASE_URL PAGE_SIZE EXPECTED [--work-ms MS] [--loop uvloop]
    python -m benchmarks.contenders.NAME --probe [--loop uvloop]

It pages ``GET {BASE_URL}/integrations/logs`` to the end and prints one JSON line:
``{"count", "unique", "seconds", "cpu_seconds", "peak_rss", "start_rss", "versions"}``.
``seconds`` runs from just before the first request to just after the last record
(client construction and teardown are outside it), ``cpu_seconds`` is the
process's CPU time over the same span; ``peak_rss`` is ``ru_maxrss`` of the
process in bytes, ``start_rss`` the same just before the first request.
``--probe`` only imports the contender's libraries and prints ``{"available": true,
"versions": {…}}``; a contender whose libraries are missing prints
``{"unavailable": "reason"}`` instead (in both modes) and exits 0. ``--loop uvloop``
runs the contender on uvloop's event loop instead of asyncio's (unavailable
without uvloop).

This module imports only the standard library, so each contender's process
holds only its own libraries.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import json
import resource
import sys
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, NoReturn

__all__ = [
    "PASSWORD",
    "USER",
    "Options",
    "Tally",
    "basic_authorization",
    "run",
    "unavailable",
    "versions_of",
]

USER = "bench-public-key"
PASSWORD = "bench-secret-key"


def basic_authorization(user: str = USER, password: str = PASSWORD) -> str:
    """The ``Authorization`` header value for ``user``/``password`` (HTTP Basic)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass(frozen=True, slots=True)
class Options:
    """The contender's command line."""

    base_url: str
    page_size: int
    expected: int
    work: float
    """Seconds the consumer awaits (``asyncio.sleep``) after each page of records; 0 for none."""

    @property
    def logs_url(self) -> str:
        return f"{self.base_url}/integrations/logs"


def _max_rss() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage if sys.platform == "darwin" else usage * 1024


class Tally:
    """Counts records, checks the ids are exactly ``1..expected`` and times the export.

    Seen ids live in a ``bytearray`` (1 MB per million records, the same in every
    contender) rather than a ``set`` of ints, which would dominate peak RSS.
    """

    __slots__ = (
        "_seen",
        "count",
        "cpu_finished",
        "cpu_started",
        "expected",
        "finished",
        "start_rss",
        "started",
        "unique",
        "work",
    )

    def __init__(self, expected: int, work: float) -> None:
        self.expected = expected
        self.work = work
        self.count = 0
        self.unique = 0
        self._seen = bytearray(expected + 1)
        self.started = 0.0
        self.finished = 0.0
        self.start_rss = 0
        self.cpu_started = 0.0
        self.cpu_finished = 0.0

    def start(self) -> None:
        """Call just before the first request."""
        self.start_rss = _max_rss()
        self.cpu_started = time.process_time()
        self.started = time.perf_counter()

    def add(self, log_id: object) -> None:
        """Count one record; ``unique`` grows only for an id in ``1..expected`` seen first."""
        self.count += 1
        if type(log_id) is int and 0 < log_id <= self.expected and not self._seen[log_id]:
            self._seen[log_id] = 1
            self.unique += 1

    async def page_done(self) -> None:
        """The consumer's per-page work (latency scenario): await ``work`` seconds."""
        if self.work:
            await asyncio.sleep(self.work)

    def stop(self) -> None:
        """Call right after the last record."""
        self.finished = time.perf_counter()
        self.cpu_finished = time.process_time()


def versions_of(distributions: Iterable[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in distributions:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _emit(payload: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def unavailable(reason: object) -> NoReturn:
    """Report that this contender cannot run here (a library is missing) and exit 0."""
    _emit({"unavailable": str(reason)})
    raise SystemExit(0)


def run(
    main: Callable[[Options, Tally], Coroutine[Any, Any, None]],
    versions: Callable[[], dict[str, str]],
    argv: list[str] | None = None,
) -> None:
    """Parse the command line, run ``main`` in a fresh event loop and print the result line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url", nargs="?")
    parser.add_argument("page_size", nargs="?", type=int)
    parser.add_argument("expected", nargs="?", type=int)
    parser.add_argument("--work-ms", type=float, default=0.0)
    parser.add_argument("--probe", action="store_true")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args(argv)
    runner: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    loop_versions: dict[str, str] = {}
    if args.loop == "uvloop":
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError as exc:
            unavailable(f"uvloop is not installed ({exc})")
        runner = uvloop.run
        loop_versions = versions_of(["uvloop"])
    if args.probe:
        _emit({"available": True, "versions": {**versions(), **loop_versions}})
        return
    if args.base_url is None or args.page_size is None or args.expected is None:
        parser.error("BASE_URL PAGE_SIZE EXPECTED are required")
    options = Options(
        base_url=args.base_url.rstrip("/"),
        page_size=args.page_size,
        expected=args.expected,
        work=args.work_ms / 1000,
    )
    tally = Tally(options.expected, options.work)
    try:
        runner(main(options, tally))
    except Exception as exc:
        _emit({"error": f"{type(exc).__name__}: {exc}"[:2000], "count": tally.count})
        raise SystemExit(1) from None
    if not tally.finished:
        tally.stop()
    _emit(
        {
            "count": tally.count,
            "unique": tally.unique,
            "seconds": tally.finished - tally.started,
            "cpu_seconds": tally.cpu_finished - tally.cpu_started,
            "peak_rss": _max_rss(),
            "start_rss": tally.start_rss,
            "versions": {**versions(), **loop_versions},
        }
    )
