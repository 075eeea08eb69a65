"""Waiting and stopping that never swallow the caller's cancellation.

Two idioms of asyncio code can lose a ``task.cancel()`` aimed at the caller:

- ``asyncio.wait_for(event.wait(), timeout)`` on Python 3.11: when the cancel
  races the timeout, ``wait_for`` may return (or raise ``TimeoutError``) instead of
  raising ``CancelledError``, and a loop around it never ends;
- ``task.cancel(); with suppress(CancelledError): await task``: if the *caller*
  is cancelled while it waits for ``task`` to finish, the suppress eats that
  cancellation too;
- a library call that does the first internally: redis-py (8.x) sends each
  command through ``asyncio.wait_for(..., socket_timeout)``, so on Python 3.11 a
  cancel that lands while a command is written is often lost, and the call returns
  as if nothing happened.

The long-running pieces (the engine's ``run_due`` under ``LogWatcher.run``, the
exports' walks and each held account of the Redis coordinator; the coordinator's
rounds; the command line's background tickers) wait only through the functions here:
``sleep_until`` waits for an event or a delay with a timer callback (no
cancellation is used for the timeout, so nothing can race it), ``stop_task``
cancels a task and waits for it while re-raising a cancel aimed at the caller,
``finish`` waits for a write in a worker thread to end even through a cancel, and
every Redis call goes through ``keep_cancel``, which raises a cancel the library
swallowed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

__all__ = ["finish", "keep_cancel", "sleep_until", "stop_task", "wake"]

_T = TypeVar("_T")


def wake(waiter: asyncio.Future[None]) -> None:
    """End ``waiter`` (if it is not done yet)."""
    if not waiter.done():
        waiter.set_result(None)


async def sleep_until(event: asyncio.Event, delay: float | None) -> bool:
    """Wait until ``event`` is set or ``delay`` seconds passed; ``True`` if it is set.

    ``delay=None`` waits for the event only. A cancel of the caller always raises
    ``CancelledError`` here, whatever the timer is doing at that moment.
    """
    if event.is_set():
        return True
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    timer = None if delay is None else loop.call_later(max(0.0, delay), wake, waiter)
    # Event.wait() is a coroutine; a task of it is the one public way to be told
    # when the event is set. It is cancelled before we return.
    setter = loop.create_task(event.wait())
    setter.add_done_callback(lambda _: wake(waiter))
    try:
        await waiter
    finally:
        if timer is not None:
            timer.cancel()
        if not setter.done():
            setter.cancel()
    return event.is_set()


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait until it has ended; its own outcome is dropped.

    If the caller itself is cancelled meanwhile, the wait goes on until ``task``
    has ended (so nothing keeps running behind the caller's back) and then the
    caller's ``CancelledError`` is raised, never swallowed.
    """
    if task is None:
        return
    task.cancel()
    interrupted = False
    while not task.done():
        try:
            await asyncio.wait((task,))
        except asyncio.CancelledError:
            interrupted = True  # the task was told once; it is not cut short a second time
    if not task.cancelled():
        task.exception()  # retrieved: an error of a task we stopped is not "never retrieved"
    if interrupted:
        raise asyncio.CancelledError


async def keep_cancel(awaitable: Awaitable[_T]) -> _T:
    """Await ``awaitable``; if the caller was cancelled meanwhile, raise ``CancelledError``.

    For calls into libraries that may swallow a cancel: a cancel requested while
    ``awaitable`` ran raises here even when the library returned normally. (A
    timeout that cancels and then un-cancels the task, like ``asyncio.timeout``,
    leaves the count as it was and is not mistaken for one.)
    """
    task = asyncio.current_task()
    before = 0 if task is None else task.cancelling()
    result = await awaitable
    if task is not None and task.cancelling() > before:
        raise asyncio.CancelledError
    return result


async def finish(future: asyncio.Future[_T], *, check: bool = True) -> _T | None:
    """Wait until ``future`` is done, even through cancellation (re-raised afterwards).

    A worker thread cannot be stopped: a cancelled wait must not leave it writing
    behind the caller's back. ``check=False`` drops the future's own error.
    """
    interrupted = False
    while not future.done():
        try:
            await asyncio.wait((future,))
        except asyncio.CancelledError:
            interrupted = True
    if interrupted:
        if not future.cancelled():
            future.exception()  # retrieved: reported by whoever awaits the write next
        raise asyncio.CancelledError
    if future.cancelled() or (not check and future.exception() is not None):
        return None
    return future.result()
