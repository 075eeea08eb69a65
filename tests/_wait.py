"""Waiting in tests for a condition that something else makes true."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(
    condition: Callable[[], bool],
    limit: float = 10.0,
    what: str = "the condition",
    *,
    every: float = 0.01,
) -> float:
    """Wait until ``condition()`` holds, looking every ``every`` seconds; the seconds it took.

    ``AssertionError`` naming ``what`` if it does not hold within ``limit`` seconds.
    """
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < limit, f"{what} did not hold within {limit:g} s"
        await asyncio.sleep(every)
    return time.monotonic() - started
