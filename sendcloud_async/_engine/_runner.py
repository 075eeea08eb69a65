"""``Runner``: run items when they are due, at most ``concurrency`` at once, while items
come and go; ``run_due``: a fixed set of items run that way."""

from __future__ import annotations

import asyncio
import heapq
import inspect
from collections.abc import (
    Awaitable,
    Callable,
    Container,
    Hashable,
    Iterable,
    MutableMapping,
    Sequence,
)
from typing import Any, Generic, TypeVar

from .._aio import finish, sleep_until
from .._errors import InvalidInputError
from .._validate import positive_int
from ._backoff import Backoff
from ._events import Failed, Recovered, RunEvent

__all__ = ["Runner", "run_due"]

K = TypeVar("K", bound=Hashable)
OnEvent = Callable[[RunEvent[K]], Awaitable[None] | None]


class Runner(Generic[K]):
    """Runs items when they are due, at most ``concurrency`` at once; ``add``,
    ``remove`` and ``discard`` change the items while ``run()`` goes on (an item
    removed has its run in flight cancelled at once, not at the next wake-up).

    ``await run(item)`` does one run of an item and returns the seconds until it is
    due again (``None``: it is done and leaves the runner). An item due while all
    runs are busy runs as soon as one ends, earliest due first (then first added).

    A run that raises asks ``backoff.decide(error, failures)``: a wait reports
    ``Failed`` and runs the item again after it, while the others go on; ``None``
    (and any error without a ``backoff``) stops ``run()``: the runs in flight are
    cancelled and awaited, then the error is raised as it is. A success after
    failures reports ``Recovered``, and so does ``progress(item)``, said by a run
    that never returns (a watch) when it works again. ``failures`` (failures in a
    row per item) may be kept by the caller across runners. ``on_event`` may be a
    coroutine function; an error it raises stops ``run()`` like a fatal one.

    A run that ends with a ``CancelledError`` the runner did not cause (it awaited a
    future another party cancelled) stops ``run()`` the same way: ``CancelledError``.

    ``once``: every item runs one time (a failure is reported, not retried).
    ``run()`` returns when no item is left, or, with ``keep_open``, only when
    ``stop()`` is called (or ``stop``, the event given, is set). Stopped, or its
    caller cancelled: the runs in flight are cancelled and awaited (a commit in
    progress finishes: the sinks see to it), then ``run()`` returns, or raises
    ``CancelledError``. A bad ``concurrency``: ``InvalidInputError``.
    """

    def __init__(
        self,
        run: Callable[[K], Awaitable[float | None]],
        *,
        concurrency: int,
        backoff: Backoff | None = None,
        on_event: OnEvent[K] | None = None,
        once: bool = False,
        failures: MutableMapping[K, int] | None = None,
        keep_open: bool = False,
        stop: asyncio.Event | None = None,
    ) -> None:
        self._run = run
        self._limit = positive_int(concurrency, "concurrency")
        self._backoff = backoff
        self._on_event = on_event
        self._once = once
        self._keep_open = keep_open
        self._counts: MutableMapping[K, int] = {} if failures is None else failures
        self._stopping = asyncio.Event() if stop is None else stop
        #: The items held, each with the number of its ``add`` (a later add is a new item).
        self._items: dict[K, int] = {}
        self._added = 0
        #: ``(due, add number, item)``; an entry whose add number is stale is skipped.
        self._due: list[tuple[float, int, K]] = []
        #: The run in flight of each item held.
        self._runs: dict[K, asyncio.Task[None]] = {}
        #: Every task not yet ended, removed runs and reports in the background included.
        self._live: set[asyncio.Task[None]] = set()
        #: The removed runs cancelled already (``discard``), not yet ended.
        self._told: set[asyncio.Task[None]] = set()
        self._error: BaseException | None = None
        #: Whether ``run()`` is cancelling the tasks left (a run cancelled then is its doing).
        self._halting = False
        self._wake = asyncio.Event()

    def add(self, item: K) -> None:
        """Hold ``item``, due now; ``InvalidInputError`` if it is held already."""
        if item in self._items:
            raise InvalidInputError(f"{item!r} is given twice")
        self._added += 1
        self._items[item] = self._added
        heapq.heappush(self._due, (asyncio.get_running_loop().time(), self._added, item))
        self._wake.set()

    def discard(self, item: K) -> asyncio.Task[None] | None:
        """Stop holding ``item`` now: its run in flight (returned) is cancelled at once
        and ends in the background; its due time and failures in a row are forgotten.
        An item not held: nothing happens."""
        if self._items.pop(item, None) is None:
            return None
        self._counts.pop(item, None)
        run = self._runs.pop(item, None)
        if run is not None and not run.done():
            run.cancel()
            self._told.add(run)
        self._wake.set()
        return run

    async def remove(self, item: K) -> None:
        """``discard(item)``, then wait until its run in flight has ended."""
        run = self.discard(item)
        if run is not None:
            await finish(run, check=False)

    def progress(self, item: K) -> None:
        """The run in flight of ``item`` works: its failures in a row end (``Recovered``)."""
        failed = self._counts.pop(item, 0) if item in self._items else 0
        if failed:
            try:
                result = self._on_event(Recovered(item, failed)) if self._on_event else None
            except Exception as exc:
                self._fail(exc)
                return
            if inspect.isawaitable(result):
                self._track(asyncio.get_running_loop().create_task(_wait(result)))

    def stop(self) -> None:
        """Ask ``run()`` to end: the runs in flight are cancelled and awaited."""
        self._stopping.set()

    async def run(self) -> None:
        """Run the items until none is left (``keep_open``: until ``stop()``)."""
        loop = asyncio.get_running_loop()
        self._halting = False
        stopper = loop.create_task(self._stopping.wait())
        stopper.add_done_callback(lambda _: self._wake.set())
        try:
            while True:
                if self._error is not None:  # also when stop was asked meanwhile
                    raise self._error
                if self._stopping.is_set():
                    return
                self._wake.clear()
                while len(self._runs) < self._limit:
                    when = self._next()
                    if when is None or when > loop.time():
                        break
                    item = heapq.heappop(self._due)[2]
                    task = loop.create_task(self._attempt(item), name=f"run {item}")
                    self._runs[item] = task
                    self._track(task)
                if not self._items and not self._keep_open:
                    return
                when = self._next() if len(self._runs) < self._limit else None
                await sleep_until(self._wake, None if when is None else when - loop.time())
        finally:
            self._halting = True
            await _halt([*self._live, stopper], told=self._told)

    def _next(self) -> float | None:
        """When the first item waiting is due (stale entries dropped), or ``None``."""
        while self._due:
            when, added, item = self._due[0]
            if self._items.get(item) == added and item not in self._runs:
                return when
            heapq.heappop(self._due)
        return None

    def _current(self, item: K) -> bool:
        """Whether the task running now is ``item``'s run (not a removed one)."""
        return self._runs.get(item) is asyncio.current_task()

    async def _attempt(self, item: K) -> None:
        try:
            after = await self._run(item)
        except Exception as exc:
            if not self._current(item):
                return
            failed = self._counts.get(item, 0) + 1
            wait = None if self._backoff is None else self._backoff.decide(exc, failed)
            if wait is None:
                self._fail(exc)
                return
            self._counts[item] = failed
            event: RunEvent[K] = Failed(item, exc, failed, wait)
            after = wait
        else:
            if not self._current(item):
                return
            failed = self._counts.pop(item, 0)
            event = Recovered(item, failed)
        if failed and self._on_event is not None:
            try:
                await _report(self._on_event, event)
            except Exception as exc:
                self._fail(exc)
                return
        if not self._current(item):
            return
        del self._runs[item]
        if after is None or self._once:
            del self._items[item]
        else:
            when = asyncio.get_running_loop().time() + after
            heapq.heappush(self._due, (when, self._items[item], item))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._live.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._live.discard(task)
        self._told.discard(task)
        if task.cancelled():
            item = next((k for k, run in self._runs.items() if run is task), None)
            if item is not None and not self._halting:
                # A cancel the runner did not make (the run awaited a future another party
                # cancelled): the item would wait for ever; ``run()`` stops instead.
                self._fail(asyncio.CancelledError(f"the run of {item!r} was cancelled"))
        elif task.exception() is not None:
            self._fail(task.exception())
        self._wake.set()

    def _fail(self, error: BaseException | None) -> None:
        """``error`` stops ``run()`` (the first one is raised)."""
        if self._error is None:
            self._error = error
        self._wake.set()


async def run_due(
    items: Iterable[K],
    run: Callable[[K], Awaitable[float | None]],
    *,
    concurrency: int,
    backoff: Backoff | None = None,
    on_event: OnEvent[K] | None = None,
    once: bool = False,
    failures: MutableMapping[K, int] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run every item of ``items`` (all due now, in the order given) until none is due
    again: a ``Runner`` of these items (see it for ``run``, ``backoff``, ``on_event``,
    ``once``, ``failures`` and ``stop``). A bad ``concurrency`` or an item given twice:
    ``InvalidInputError``, before anything runs."""
    runner = Runner(
        run,
        concurrency=concurrency,
        backoff=backoff,
        on_event=on_event,
        once=once,
        failures=failures,
        stop=stop,
    )
    for item in items:
        runner.add(item)
    await runner.run()


async def _halt(tasks: Sequence[asyncio.Task[Any]], *, told: Container[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` (once: a removed run of ``told`` is not cut short again) and wait
    for every one to end, even if the caller is cancelled meanwhile (its
    ``CancelledError`` is raised afterwards). Whether a task is ``cancelling()`` says
    nothing here: a timeout (``asyncio.timeout``, aiohttp's) that fired in the same
    turn also counts, and takes its cancel back when it turns it into ``TimeoutError``."""
    for task in tasks:
        if task not in told:
            task.cancel()
    interrupted = False
    for task in tasks:
        try:
            await finish(task, check=False)
        except asyncio.CancelledError:
            interrupted = True
    if interrupted:
        raise asyncio.CancelledError


async def _wait(awaitable: Awaitable[None]) -> None:
    await awaitable


async def _report(on_event: OnEvent[K], event: RunEvent[K]) -> None:
    result = on_event(event)
    if inspect.isawaitable(result):
        await result
