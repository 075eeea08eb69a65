"""``run_due``: run items when they are due, at most ``concurrency`` at once."""

from __future__ import annotations

import asyncio
import heapq
import inspect
from collections.abc import Awaitable, Callable, Hashable, Iterable, MutableMapping, Sequence
from typing import Any, TypeVar

from .._aio import sleep_until, stop_task
from .._errors import InvalidInputError
from .._validate import positive_int
from ._backoff import Backoff
from ._events import Failed, Recovered, RunEvent

__all__ = ["run_due"]

K = TypeVar("K", bound=Hashable)


async def run_due(
    items: Iterable[K],
    run: Callable[[K], Awaitable[float | None]],
    *,
    concurrency: int,
    backoff: Backoff | None = None,
    on_event: Callable[[RunEvent[K]], Awaitable[None] | None] | None = None,
    once: bool = False,
    failures: MutableMapping[K, int] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run every item of ``items`` (all due now, in the order given) until none is due again.

    ``await run(item)`` does one run of an item and returns the seconds until it is
    due again (``None``: it is done). At most ``concurrency`` runs are in flight; an
    item due while all are busy runs as soon as one ends, earliest due first.

    A run that raises asks ``backoff.decide(error, failures)``: a wait reports
    ``Failed`` and runs the item again after it, while the others go on; ``None``
    (and any error without a ``backoff``) stops the run: the runs in flight are
    cancelled and awaited, then the error is raised as it is. A success after
    failures reports ``Recovered``. ``failures`` (failures in a row per item) may be
    kept by the caller across runs. ``on_event`` may be a coroutine function; an
    error it raises stops the run like a fatal one.

    ``once``: every item runs one time (a failure is reported, not retried).
    ``stop`` set, or the caller cancelled: the runs in flight are cancelled and
    awaited (a commit in progress finishes: the sinks see to it), then ``run_due``
    returns, or raises ``CancelledError``. A bad ``concurrency`` or an item given
    twice: ``InvalidInputError``, before anything runs.
    """
    limit = positive_int(concurrency, "concurrency")
    loop = asyncio.get_running_loop()
    order: dict[K, int] = {}
    for item in items:
        if item in order:
            raise InvalidInputError(f"{item!r} is given twice")
        order[item] = len(order)
    due = [(0.0, n, item) for item, n in order.items()]
    counts: MutableMapping[K, int] = {} if failures is None else failures
    running: set[asyncio.Task[tuple[K, float | None]]] = set()
    ended: list[asyncio.Task[tuple[K, float | None]]] = []
    wake = asyncio.Event()

    async def attempt(item: K) -> tuple[K, float | None]:
        try:
            after = await run(item)
        except Exception as exc:
            failed = counts.get(item, 0) + 1
            wait = None if backoff is None else backoff.decide(exc, failed)
            if wait is None:
                raise
            counts[item] = failed
            await _report(on_event, Failed(item, exc, failed, wait))
            return item, wait
        failed = counts.pop(item, 0)
        if failed:
            await _report(on_event, Recovered(item, failed))
        return item, after

    def end(task: asyncio.Task[tuple[K, float | None]]) -> None:
        ended.append(task)
        wake.set()

    stopper = None
    if stop is not None:
        stopper = loop.create_task(stop.wait())
        stopper.add_done_callback(lambda _: wake.set())
    try:
        while stop is None or not stop.is_set():
            while ended:
                task = ended.pop()
                running.discard(task)
                item, after = task.result()  # a fatal error: raised, the others stopped below
                if after is not None and not once:
                    heapq.heappush(due, (loop.time() + after, order[item], item))
            while due and len(running) < limit and due[0][0] <= loop.time():
                item = heapq.heappop(due)[2]
                task = loop.create_task(attempt(item), name=f"run {item}")
                task.add_done_callback(end)
                running.add(task)
            if not running and not due:
                return
            wake.clear()
            free = len(running) < limit
            await sleep_until(wake, due[0][0] - loop.time() if due and free else None)
    finally:
        await _halt([*running] if stopper is None else [*running, stopper])


async def _halt(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait for every one to end, even if the caller is cancelled
    meanwhile (its ``CancelledError`` is raised afterwards)."""
    for task in tasks:
        task.cancel()
    interrupted = False
    for task in tasks:
        try:
            await stop_task(task)
        except asyncio.CancelledError:
            interrupted = True
    if interrupted:
        raise asyncio.CancelledError


async def _report(
    on_event: Callable[[RunEvent[K]], Awaitable[None] | None] | None, event: RunEvent[K]
) -> None:
    if on_event is not None:
        result = on_event(event)
        if inspect.isawaitable(result):
            await result
