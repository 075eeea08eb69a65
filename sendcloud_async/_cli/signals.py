"""SIGTERM stops a command the way Ctrl-C does (systemd, Docker and Kubernetes send it)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["Stop", "sigterm_as_interrupt"]


class Stop:
    """Whether SIGTERM (rather than Ctrl-C) caused the interruption."""

    terminated = False


@contextmanager
def sigterm_as_interrupt() -> Iterator[Stop]:
    """Inside the block, SIGTERM does what SIGINT does, and ``Stop.terminated`` says it came.

    SIGINT's handler is the one in force when the signal arrives: before the event
    loop, Python's (``KeyboardInterrupt`` at once); inside ``asyncio.run``, asyncio's
    (cancel the main task, so cleanup runs, then ``KeyboardInterrupt``). Only the
    main thread can install handlers; elsewhere the block changes nothing.
    """
    stop = Stop()
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

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)
