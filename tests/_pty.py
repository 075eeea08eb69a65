"""Run the command line with one of its streams on a pseudo-terminal (a real process)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import signal
import struct
import termios
import time
from typing import Literal

from tests.functional.test_cli import start


async def on_pty(
    *args: str,
    env: dict[str, str],
    stream: Literal["stdout", "stderr"] = "stderr",
    columns: int | None = 200,
    interrupt_after: float | None = None,
) -> tuple[int, list[tuple[float, bytes]], bytes]:
    """Run the command with ``stream`` on a terminal ``columns`` wide (``None``: as opened).

    Ctrl-C (SIGINT) after ``interrupt_after`` seconds (``None``: let it end).
    (exit status, what the terminal got as (arrival time, bytes) chunks, the other
    stream's bytes if it is stdout's).
    """
    master, slave = pty.openpty()
    if columns is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    chunks: list[tuple[float, bytes]] = []
    loop = asyncio.get_running_loop()

    def drain() -> None:
        try:
            chunks.append((time.monotonic(), os.read(master, 65536)))
        except OSError:
            loop.remove_reader(master)

    loop.add_reader(master, drain)
    try:
        proc = await start(*args, env=env, **{stream: slave})
        os.close(slave)
        if interrupt_after is not None:
            await asyncio.sleep(interrupt_after)
            proc.send_signal(signal.SIGINT)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        await asyncio.sleep(0.05)
        drain()
    finally:
        loop.remove_reader(master)
        os.close(master)
    assert proc.returncode is not None
    return proc.returncode, chunks, out or b""
