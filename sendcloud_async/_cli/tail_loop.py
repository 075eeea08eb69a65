"""The run of ``logs tail``: open the output, then loop -- find the account streams, take
over what was left pending, read, write, acknowledge -- until stopped (or, ``--once``,
drained); the live line while it runs and the summary at the end."""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from .._aio import sleep_until
from .._errors import InvalidInputError, StateConfigurationError, StateUnavailableError
from . import commands
from .common import EXIT_FAILURE, EXIT_OK, UsageError, one_line
from .context import Context
from .exits import stop_status
from .redis_watch import require_redis_extra
from .signals import run as run_stoppable
from .tail_output import FileSink, OutputStop, Sink, StdoutSink, tail_line

if TYPE_CHECKING:
    from .._redis._tail import StreamTail, TailEntry

__all__ = ["TailLoop", "TailStatus", "run"]

#: How long one read waits for new entries (well below redis-py's socket timeout).
_READ_BLOCK: Final = 0.5
#: Seconds between two tries while Redis cannot be reached.
_RETRY: Final = 2.0
#: Entries read per stream at a time.
_COUNT: Final = 500


class TailStatus:
    """What the live line shows and the summary says."""

    def __init__(self) -> None:
        self.written = 0
        self.recovered = 0
        self.skipped = 0
        self.streams = 0
        self.last: str | None = None
        self.down_since: float | None = None

    def show(self, ctx: Context) -> None:
        """Make this the status line (a change of the numbers is a change)."""
        ctx.progress.show(
            self.text(),
            fields={
                "streams": self.streams,
                "written": self.written,
                "recovered": self.recovered,
                "skipped": self.skipped,
                "redis_unreachable": self.down_since is not None,
            },
            key=(self.streams, self.written, self.skipped, self.down_since),
        )

    def text(self) -> str:
        parts = [f"tailing {self.streams:,} streams", f"{self.written:,} logs written"]
        if self.recovered:
            parts.append(f"{self.recovered:,} of them pending from before")
        if self.last is not None:
            parts.append(f"last at {self.last}")
        if self.down_since is not None:
            since = time.strftime("%H:%M:%S", time.localtime(self.down_since))
            parts.append(f"Redis unreachable since {since}")
        return " · ".join(parts)


class TailLoop:
    """The loop: discover, recover, read, write, acknowledge; until stopped (or drained)."""

    def __init__(
        self,
        args: argparse.Namespace,
        ctx: Context,
        tail: StreamTail,
        sink: Sink,
        stop: asyncio.Event,
    ) -> None:
        self.args = args
        self.ctx = ctx
        self.tail = tail
        self.sink = sink
        self.stop = stop
        self.status = TailStatus()
        self.unacked: list[TailEntry] = []

    async def run(self) -> None:
        once: bool = self.args.once
        next_scan = next_claim = 0.0
        opened = False
        claim_every = min(max(self.args.claim_idle / 2, 0.5), 30.0)
        from redis import exceptions as redis_errors

        while not self.stop.is_set():
            try:
                if not opened:
                    await self.tail.open()
                    opened = True
                if self.unacked:
                    await self.tail.ack(self.unacked)
                    self.unacked.clear()
                now = time.monotonic()
                if now >= next_scan:
                    new = await self.tail.discover()
                    next_scan = now + self.args.scan_interval
                    self.status.streams = len(self.tail.streams)
                    if new:  # a run of this consumer may have left entries pending there
                        await self._deliver(await self.tail.pending(new), recovered=True)
                if now >= next_claim:
                    await self._deliver(await self.tail.claim(), recovered=True)
                    next_claim = now + claim_every
                if not self.tail.streams and not once:  # nothing to read yet: wait a while
                    self._up()
                    self.status.show(self.ctx)
                    await sleep_until(self.stop, _READ_BLOCK)
                    continue
                entries = await self.tail.read(None if once else _READ_BLOCK)
                self._up()
                if entries:
                    await self._deliver(entries)
                elif once:
                    return
                self.status.show(self.ctx)
            except StateUnavailableError as exc:
                # An outage is waited out; StateConfigurationError (a password, a
                # database) is not: it ends the run.
                if once:
                    raise
                self._down(exc)
                await sleep_until(self.stop, _RETRY)
            except redis_errors.ResponseError as exc:
                if not str(exc).startswith("NOGROUP"):
                    raise
                await self.tail.regroup()  # a stream was deleted, or its group destroyed

    async def _deliver(self, entries: Sequence[TailEntry], *, recovered: bool = False) -> None:
        """Write ``entries`` out (flushed, fsync-ed), then acknowledge them."""
        if not entries:
            return
        lines = []
        for entry in entries:
            line = tail_line(entry)
            if line is None:
                self.status.skipped += 1
                why = "was trimmed before it was read" if entry.log is None else "holds no log"
                self.ctx.warn(
                    f"{self.tail.store.stream_key(entry.account)} entry {entry.entry_id} {why}; "
                    "skipped",
                    event="entry_skipped",
                    account=entry.account,
                    entry=entry.entry_id,
                )
            else:
                lines.append(line)
        if lines:
            self.sink.write(b"".join(lines), len(lines))
        self.status.written += len(lines)
        if recovered:
            self.status.recovered += len(lines)
        self.status.last = time.strftime("%H:%M:%S")
        self.unacked.extend(entries)
        await self.tail.ack(self.unacked)
        self.unacked.clear()

    def _down(self, exc: Exception) -> None:
        if self.status.down_since is None:
            self.status.down_since = time.time()
            self.ctx.warn(f"{one_line(exc)}; trying again every {_RETRY:g} s", event="redis_down")
        self.status.show(self.ctx)

    def _up(self) -> None:
        if self.status.down_since is not None:
            down = time.time() - self.status.down_since
            self.status.down_since = None
            self.ctx.progress.log(
                "info",
                f"Redis answers again (unreachable for {down:.0f} s)",
                event="redis_up",
                down_seconds=round(down, 1),
            )


def _default_consumer() -> str:
    """This host's name: a tail restarted on the same host continues its own pending entries."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:100]
    return host or "tail"


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Check everything (exit 2 on a refusal, before Redis is asked and before the output
    is touched), open the output, then tail until stopped (or drained)."""
    require_redis_extra()
    from .._redis._tail import StreamTail
    from .._redis._watch import DEFAULT_STREAM_PREFIX, RedisWatchStore

    try:
        store = RedisWatchStore.from_url(
            args.redis, stream_prefix=args.stream or DEFAULT_STREAM_PREFIX
        )
    except InvalidInputError as exc:
        raise UsageError(str(exc)) from None
    try:
        tail = StreamTail(
            store,
            group=args.group,
            consumer=args.consumer or _default_consumer(),
            start=args.start,
            claim_idle=args.claim_idle,
            count=_COUNT,
        )
    except InvalidInputError as exc:
        raise UsageError(str(exc)) from None
    sink: Sink
    if args.out == "-":
        sink = StdoutSink(ctx.stdout)
    else:
        file_sink = FileSink(Path(args.out))
        cut = file_sink.open()
        if cut:
            ctx.warn(
                f"{args.out} ended in an unfinished line ({cut:,} bytes, from a tail that was "
                "stopped while writing); cut it off: its entries were not acknowledged and are "
                "written again"
            )
        sink = file_sink
    try:
        return run_stoppable(_main(args, ctx, tail, sink))
    finally:
        sink.close()


async def _main(args: argparse.Namespace, ctx: Context, tail: StreamTail, sink: Sink) -> int:
    from redis import exceptions as redis_errors

    stop = asyncio.Event()
    signals: list[int] = []

    def on_signal(signum: int) -> None:
        signals.append(signum)
        stop.set()

    loop = asyncio.get_running_loop()
    if sys.platform != "win32":
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
    async with tail.store:
        runner = TailLoop(args, ctx, tail, sink, stop)
        failure: str | None = None
        try:
            await runner.run()
        except StateUnavailableError as exc:
            failure = one_line(exc)
        except StateConfigurationError as exc:
            if exc.reason == "database":
                raise UsageError(f"--redis: {exc}") from None
            failure = one_line(exc)
        except OutputStop as exc:
            failure = str(exc)
        except redis_errors.RedisError as exc:
            failure = f"Redis refused: {one_line(exc)}"
    status = runner.status
    ctx.progress.finish()
    if failure is not None:
        ctx.error(failure)
        return EXIT_FAILURE
    if not ctx.quiet:
        # On stderr: stdout may be the data itself.
        pending = len(runner.unacked)
        ctx.progress.log(
            "info",
            f"{'stopped' if signals else 'done'}: {status.written:,} logs written to "
            f"{sink.label} from {status.streams:,} streams"
            + (f", {status.skipped:,} entries skipped" if status.skipped else "")
            + (
                f"; {pending:,} not acknowledged (they are written again by the next run)"
                if pending
                else ""
            ),
            event="stopped" if signals else "done",
            written=status.written,
            streams=status.streams,
            skipped=status.skipped,
            unacknowledged=pending,
        )
    if signals:
        stops = commands.LOGS_TAIL.until_stopped
        return stop_status(stops, args, terminated=signals[0] == signal.SIGTERM)
    return EXIT_OK
