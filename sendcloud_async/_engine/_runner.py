"""``Runner``: run items when they are due, at most ``concurrency`` at once, while items
come and go; ``run_due``: a fixed set of items run that way."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import inspect
from collections import deque
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

from .._aio import finish, wake
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
    The runs are made by at most ``concurrency`` worker tasks (as many as there are
    items, if fewer), each taking the next item due when its run ends: the runs of one
    worker share its context (a context variable a run sets stays set for the next).

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

    ``once``: every item runs one time (a failure is reported with
    ``retrying=False``, and not retried).
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
        #: The items waiting, added (due now) or due again later: ``(due, add number,
        #: item)``; stale entries skipped.
        self._due: list[tuple[float, int, K]] = []
        #: The worker running each item held that is running.
        self._runs: dict[K, asyncio.Task[None]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        #: The workers with nothing due, each waiting for its future to be set.
        self._parked: deque[asyncio.Future[None]] = deque()
        #: Per worker, the cancels the runner asked (``discard``) and has not taken back.
        self._asked: dict[asyncio.Task[None], int] = {}
        #: Per worker, the future a ``remove`` waits on until the removed run has ended.
        self._ends: dict[asyncio.Task[None], asyncio.Future[None]] = {}
        #: The reports of ``progress`` in the background.
        self._reports: set[asyncio.Task[None]] = set()
        self._error: BaseException | None = None
        #: No run starts any more (an error, a stop, the halt).
        self._closing = False
        #: Whether ``run()`` is cancelling the tasks left (a run cancelled then is its doing).
        self._halting = False
        self._waiter: asyncio.Future[None] | None = None

    def add(self, item: K) -> None:
        """Hold ``item``, due now; ``InvalidInputError`` if it is held already."""
        if item in self._items:
            raise InvalidInputError(f"{item!r} is given twice")
        self._added += 1
        self._items[item] = self._added
        heapq.heappush(self._due, (asyncio.get_running_loop().time(), self._added, item))
        if not self._kick() and len(self._workers) < self._limit:
            self._wake()

    def discard(self, item: K) -> asyncio.Task[None] | None:
        """Stop holding ``item`` now: its run in flight is cancelled at once and ends in
        the background (the worker task running it is returned; it goes on with the
        next item afterwards); its due time and failures in a row are forgotten. An
        item not held: nothing happens."""
        if self._items.pop(item, None) is None:
            return None
        self._counts.pop(item, None)
        if not self._items:
            self._wake()
        worker = self._runs.pop(item, None)
        if worker is None or worker.done():
            return None
        self._asked[worker] = self._asked.get(worker, 0) + 1
        worker.cancel()
        return worker

    async def remove(self, item: K) -> None:
        """``discard(item)``, then wait until its run in flight has ended."""
        worker = self.discard(item)
        if worker is not None:
            end = self._ends.get(worker)
            if end is None:
                end = self._ends[worker] = asyncio.get_running_loop().create_future()
            await finish(end, check=False)

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
                report = asyncio.get_running_loop().create_task(_wait(result))
                self._reports.add(report)
                report.add_done_callback(self._reported)

    def stop(self) -> None:
        """Ask ``run()`` to end: the runs in flight are cancelled and awaited."""
        self._stopping.set()

    async def run(self) -> None:
        """Run the items until none is left (``keep_open``: until ``stop()``)."""
        loop = asyncio.get_running_loop()
        self._halting = False
        self._closing = self._error is not None
        stopper = loop.create_task(self._stopping.wait())
        stopper.add_done_callback(self._stopped)
        try:
            while True:
                if self._error is not None:  # also when stop was asked meanwhile
                    raise self._error
                if self._stopping.is_set():
                    return
                if not self._items and not self._keep_open:
                    return
                while len(self._workers) < min(self._limit, len(self._items)):
                    worker = loop.create_task(self._work(), name="runner worker")
                    self._workers.add(worker)
                    worker.add_done_callback(self._ended)
                when = self._next() if self._parked else None
                if when is not None and when <= loop.time():
                    self._kick()  # a worker takes it, and wakes another or this loop
                    when = None
                waiter = self._waiter = loop.create_future()
                timer = None if when is None else loop.call_at(when, wake, waiter)
                try:
                    await waiter
                finally:
                    self._waiter = None
                    if timer is not None:
                        timer.cancel()
        finally:
            self._halting = self._closing = True
            await _halt([*self._workers, *self._reports, stopper], spare=self._asked)

    async def _work(self) -> None:
        """One worker: runs the items due, one after the other, until the halt."""
        me = asyncio.current_task()
        assert me is not None
        loop = asyncio.get_running_loop()
        while True:
            item = self._take(loop)
            if item is None:
                if self._halting:
                    return
                parked = loop.create_future()
                self._parked.append(parked)
                if self._due:
                    self._wake()  # the next one due in the heap needs a timer
                await parked  # a cancel here is the halt's (or of a caller holding me)
                continue
            self._runs[item] = me
            if self._parked and (when := self._next()) is not None:
                if when <= loop.time():
                    self._kick()  # one more due now: the next worker waiting takes it
                else:
                    self._wake()  # it needs a timer
            try:
                event: RunEvent[K] | None = None
                try:
                    after = await self._run(item)
                except Exception as exc:
                    after = None
                    if self._runs.get(item) is me:
                        failed = self._counts.get(item, 0) + 1
                        wait = None if self._backoff is None else self._backoff.decide(exc, failed)
                        if wait is None:
                            self._fail(exc)
                        else:
                            self._counts[item] = failed
                            event = Failed(item, exc, failed, wait, not self._once)
                            after = wait
                else:
                    if self._runs.get(item) is me:
                        failed = self._counts.pop(item, 0)
                        if failed:
                            event = Recovered(item, failed)
                if event is not None and self._on_event is not None:
                    try:
                        await _report(self._on_event, event)
                    except Exception as exc:
                        self._fail(exc)
            except asyncio.CancelledError:
                if me in self._asked and not await self._take_back(me):
                    raise
                if me.cancelling():
                    raise  # the halt's cancel, or one of a caller holding this task
                if self._runs.get(item) is me:
                    # A cancel the runner did not make (the run awaited a future another
                    # party cancelled): the item would wait for ever; ``run()`` stops instead.
                    del self._runs[item]
                    self._fail(asyncio.CancelledError(f"the run of {item!r} was cancelled"))
                    return
                continue
            if me in self._asked and not await self._take_back(me):
                raise asyncio.CancelledError
            if self._runs.get(item) is not me:
                continue  # discarded meanwhile
            del self._runs[item]
            if self._error is not None:
                return
            if after is None or self._once:
                del self._items[item]
                if not self._items:
                    self._wake()
            else:
                heapq.heappush(self._due, (loop.time() + after, self._items[item], item))

    async def _take_back(self, me: asyncio.Task[None]) -> bool:
        """Take back the cancels the runner asked of ``me`` (its run has ended) and end
        the wait of a ``remove``; ``False``: another cancel stands, ``me`` must end.
        A cancel asked while ``me`` was not waiting lands at its next wait, even when
        the run ended with a ``CancelledError`` of its own: that wait is here."""
        for _ in range(self._asked.pop(me, 0)):
            me.uncancel()
        end = self._ends.pop(me, None)
        if end is not None and not end.done():
            end.set_result(None)
        if not me.cancelling():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)
        return not me.cancelling()

    def _take(self, loop: asyncio.AbstractEventLoop) -> K | None:
        """The item to run now (earliest due, then first added), taken off the heap,
        or ``None``."""
        when = None if self._closing or self._stopping.is_set() else self._next()
        if when is None or when > loop.time():
            return None
        return heapq.heappop(self._due)[2]

    def _next(self) -> float | None:
        """When the first item waiting is due (stale entries dropped), or ``None``."""
        due = self._due
        while due:
            _, added, item = due[0]
            if self._items.get(item) == added and item not in self._runs:
                return due[0][0]
            heapq.heappop(due)
        return None

    def _kick(self) -> bool:
        """Wake one worker waiting for an item; ``False``: none waits."""
        while self._parked:
            parked = self._parked.popleft()
            if not parked.done():
                parked.set_result(None)
                return True
        return False

    def _wake(self) -> None:
        """Have ``run()`` look again (workers to start, a timer to set, the end)."""
        if self._waiter is not None:
            wake(self._waiter)

    def _stopped(self, _: object) -> None:
        self._closing = True
        self._wake()

    def _ended(self, worker: asyncio.Task[None]) -> None:
        self._workers.discard(worker)
        self._asked.pop(worker, None)
        end = self._ends.pop(worker, None)
        if end is not None and not end.done():
            end.set_result(None)
        if worker.cancelled():
            if not self._halting:  # its task was cancelled by a caller holding it
                self._fail(asyncio.CancelledError("a worker of the runner was cancelled"))
        elif worker.exception() is not None:
            self._fail(worker.exception())
        self._wake()

    def _reported(self, report: asyncio.Task[None]) -> None:
        self._reports.discard(report)
        if not report.cancelled() and report.exception() is not None:
            self._fail(report.exception())

    def _fail(self, error: BaseException | None) -> None:
        """``error`` stops ``run()`` (the first one is raised)."""
        if self._error is None:
            self._error = error
        self._closing = True
        self._wake()


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


async def _halt(tasks: Sequence[asyncio.Task[Any]], *, spare: Container[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` (but those of ``spare``: a worker ending a removed run is not cut
    short, it ends after that run) and wait for every one to end, even if the caller
    is cancelled meanwhile (its ``CancelledError`` is raised afterwards). Whether a
    task is ``cancelling()`` says nothing here: a timeout (``asyncio.timeout``,
    aiohttp's) that fired in the same turn also counts, and takes its cancel back
    when it turns it into ``TimeoutError``."""
    for task in tasks:
        if task not in spare:
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
