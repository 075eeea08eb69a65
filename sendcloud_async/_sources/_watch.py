"""Watching exception logs: the logs that are new since the last look, exactly once.

``watch`` is the loop: it asks a ``fetch`` coroutine for pages and sleeps between
polls; ``client.logs.watch`` gives it the client's one request path. Every decision
it takes is a pure function of the modules beside it, none of which does I/O:

* ``_watch_state``: what a ``WatchState`` means, its checks and decoding, and the
  state a watch begins from (``begin``);
* ``_watch_pages``: one page: the new logs on it and the state after it
  (``advance``), and the cursor of the next request (``next_cursor``);
* ``_watch_window``: the lookback window behind the high-water mark, for logs that
  become visible late (``settle``, ``open_poll``, ``close_poll``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import timedelta

from ._watch_pages import Page, advance, next_cursor
from ._watch_state import LogBatch, WatchState
from ._watch_window import close_poll, open_poll, settle

__all__ = ["Fetch", "watch"]

Fetch = Callable[[str | None], Awaitable[Page]]


async def watch(
    fetch: Fetch,
    state: WatchState,
    *,
    interval: float,
    once: bool,
    lookback: timedelta = timedelta(0),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    states: bool = False,
) -> AsyncGenerator[LogBatch, None]:
    """Poll with ``fetch`` from ``state``: yield each page's new logs, sleep between polls.

    ``states``: also yield, at the end of a poll, a batch with no logs when the state
    differs from the last one yielded (or given): a poll that delivered nothing may
    still have finished a walk or closed its window. A driver that saves only its
    batches' states and begins each poll from the saved one (``LogWatcher``, the Redis
    watch) asks for them; without them it would begin every idle poll from the state
    of its last logs (resume a finished walk, re-read a closed window).
    """
    passed = state  # the state the caller holds: the one given, then the last yielded
    state = settle(state, None, lookback)  # a smaller window than the state's: pruned now
    while True:
        # Resumed in the middle of a newest-first walk: once it is finished, walk
        # again from the top in the same poll (logs came above its head meanwhile).
        again = state.walk is not None
        state = open_poll(state, lookback)
        first = True
        date: str | None = None
        followed: frozenset[str] = frozenset()
        while True:
            page = await fetch(next_cursor(state))
            if first:
                first, date = False, page.date
            step = advance(state, page, lookback, followed)
            state, followed = step.state, step.followed
            if not step.more and not again:
                state = close_poll(state, date, lookback)
            if step.items:
                passed = state
                yield LogBatch(items=step.items, state=state, late=step.late)
            if not step.more:
                if again:
                    again = False
                    continue
                break
        if states and state is not passed and state != passed:
            passed = state
            yield LogBatch(items=[], state=state)
        if once:
            return
        await sleep(interval)
