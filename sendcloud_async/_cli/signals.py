"""Ctrl-C and SIGTERM stop a command cleanly (systemd, Docker and Kubernetes send SIGTERM).

Outside the event loop, SIGTERM does what SIGINT does (``KeyboardInterrupt``). Inside
it, ``run`` (the commands' ``asyncio.run``) takes both signals as *loop callbacks*:
the first cancels the main task where it waits, the second stops at once. asyncio's
own Ctrl-C handler is a plain signal handler that runs between two bytecodes of
whatever is running, so the cancel can reach the task in the middle of a step and be
delivered at the next ``await`` of a library that loses it (redis-py's
``asyncio.wait_for`` on Python 3.11 does): the command would go on as if never told.
A loop callback cancels the task only where it waits, which ``_aio.keep_cancel``
watches.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

__all__ = ["Stop", "run", "sigterm_as_interrupt"]

_T = TypeVar("_T")


class Stop:
    """Whether SIGTERM (rather than Ctrl-C) caused the interruption, and how many came."""

    terminated = False
    signals = 0


#: The ``Stop`` of the command running now (``sigterm_as_interrupt`` sets it).
_current = Stop()
#: SIGTERM's handler outside the loop, restored when ``run`` ends.
_sigterm_handler: Any = signal.SIG_DFL


@contextmanager
def sigterm_as_interrupt() -> Iterator[Stop]:
    """Inside the block, SIGTERM does what SIGINT does, and ``Stop.terminated`` says it came.

    SIGINT's handler is the one in force when the signal arrives: before the event
    loop, Python's (``KeyboardInterrupt`` at once); inside ``asyncio.run``, asyncio's
    (cancel the main task, so cleanup runs, then ``KeyboardInterrupt``). Only the
    main thread can install handlers; elsewhere the block changes nothing.
    """
    global _current
    stop = _current = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stop.terminated = True
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:  # SIGINT ignored or default: still stop cleanly
            raise KeyboardInterrupt

    global _sigterm_handler
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    saved, _sigterm_handler = _sigterm_handler, on_sigterm
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)
        _sigterm_handler = saved


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)``, with Ctrl-C and SIGTERM taken as loop callbacks (see above).

    A stop raises ``KeyboardInterrupt`` once the main task has ended (its cleanup
    done), as ``asyncio.run`` does; ``Stop.terminated`` says whether SIGTERM came.
    """
    stop = _current
    requested = stop.signals

    async def guarded() -> _T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []

        def on_signal(terminated: bool) -> None:
            stop.signals += 1
            stop.terminated = stop.terminated or terminated
            if stop.signals - requested > 1:
                raise KeyboardInterrupt  # a second one: stop now
            task.cancel()

        if sys.platform != "win32" and threading.current_thread() is threading.main_thread():
            for signum, terminated in ((signal.SIGINT, False), (signal.SIGTERM, True)):
                loop.add_signal_handler(signum, on_signal, terminated)
                installed.append(signum)
        try:
            return await main
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
            if signal.SIGTERM in installed:  # back to the block's own handler
                signal.signal(signal.SIGTERM, _sigterm_handler)

    try:
        return asyncio.run(guarded())
    except asyncio.CancelledError:
        if stop.signals > requested:
            raise KeyboardInterrupt from None
        raise
