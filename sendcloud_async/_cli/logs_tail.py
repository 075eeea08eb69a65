"""``logs tail --redis URL``: the Redis watch's account streams as JSON Lines, at least once.

``logs watch --redis`` appends each new log of an account to the stream
``PREFIX:NAME`` (its JSON in the field ``log``), exactly once. This command reads
every such stream as one consumer of a consumer group (``_redis_tail.StreamTail``)
and writes one line per entry to stdout or ``--out FILE``::

    {"account": "shop-1", "entry": "1733059200123-0", "log": {...the IntegrationLog...}}

``entry`` is the stream entry ID: with ``account`` it names the entry uniquely,
in the order of its stream. A batch is written, flushed and fsync-ed (for a file,
or stdout redirected to one) before it is acknowledged (``XACK``), so nothing
acknowledged is ever missing from the output. What was written but not yet
acknowledged when the tail was killed is pending in Redis and written again by
the next run (of the same ``--consumer`` at once, of another after
``--claim-idle``): the output is at least once; deduplicate on ``(account,
entry)`` (or the log's ``id``) where it matters. An unfinished last line left by
a kill is cut off when the file is opened again.

Ctrl-C and SIGTERM stop it after the batch in hand is written and acknowledged;
exit 0 (``--once``: drain what is there and exit).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import stat
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

import msgspec

from .._aio import sleep_until
from .._errors import InvalidInputError, StateConfigurationError, StateUnavailableError
from .._fileio import FileWriteError, lock_exclusively, write_at, writing
from . import commands
from .command import Handlers
from .common import EXIT_FAILURE, EXIT_OK, UsageError, one_line
from .context import Context
from .destination import make_directory
from .exits import stop_status
from .options import seconds
from .redis_watch import check_redis_url, require_redis_extra
from .signals import run as run_stoppable

if sys.platform != "win32":
    pass

if TYPE_CHECKING:
    from .._redis_tail import StreamTail, TailEntry

__all__ = ["LOGS_TAIL", "tail_line"]

DEFAULT_GROUP: Final = "sendcloud-async-tail"
DEFAULT_CLAIM_IDLE: Final = 60.0
DEFAULT_SCAN_INTERVAL: Final = 5.0
#: How long one read waits for new entries (well below redis-py's socket timeout).
_READ_BLOCK: Final = 0.5
#: Seconds between two tries while Redis cannot be reached.
_RETRY: Final = 2.0
#: Entries read per stream at a time.
_COUNT: Final = 500
_ENCODER: Final = msgspec.json.Encoder()


class _Stop(Exception):
    """The output cannot be written: the tail stops, its batch stays pending."""


def tail_line(entry: TailEntry) -> bytes | None:
    """The JSON Lines record of ``entry``; ``None`` when it holds no log JSON object."""
    if entry.log is None:
        return None
    try:
        raw = bytes(msgspec.json.decode(entry.log, type=msgspec.Raw))
    except msgspec.DecodeError:
        return None
    if not raw.startswith(b"{"):
        return None
    if b"\n" in raw or b"\r" in raw:  # whitespace between tokens: one line it must be
        raw = _ENCODER.encode(msgspec.json.decode(raw))
    return (
        b'{"account":'
        + _ENCODER.encode(entry.account)
        + b',"entry":'
        + _ENCODER.encode(entry.entry_id)
        + b',"log":'
        + raw
        + b"}\n"
    )


# -- where the lines go ------------------------------------------------------------------------


class _Sink:
    """Where the lines go; ``write`` returns once they are flushed (and fsync-ed)."""

    label = "standard output"

    def write(self, data: bytes, lines: int) -> None:
        """Write ``data`` (``lines`` log lines) and make it durable."""
        raise NotImplementedError

    def close(self) -> None:
        """Let the output go."""


class _StdoutSink(_Sink):
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        buffer = getattr(stream, "buffer", None)
        self.binary = buffer if buffer is not None and hasattr(buffer, "write") else None

    def write(self, data: bytes, lines: int) -> None:
        if self.binary is not None:
            self.binary.write(data)
            self.binary.flush()
        else:
            self.stream.write(data.decode())
            self.stream.flush()
        try:
            fd = self.stream.fileno()
            if stat.S_ISREG(os.fstat(fd).st_mode):  # redirected to a file: make it durable
                os.fsync(fd)
        except (OSError, ValueError, AttributeError):
            pass  # a pipe or terminal: flushed is all there is


class _FileSink(_Sink):
    """``--out FILE``: appended to, locked while the tail runs, fsync-ed per batch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = str(path)
        self.fd: int | None = None
        self.offset = 0
        self.regular = True

    def open(self) -> int:
        """Lock the file, cut an unfinished last line off; the bytes cut (0: none)."""
        make_directory(self.path.parent, what=str(self.path))
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise UsageError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        try:
            if not lock_exclusively(fd):
                raise UsageError(f"another logs tail is writing {self.path} (it is locked)")
            info = os.fstat(fd)
            # A regular file is appended at the end of its last whole line; anything else
            # (a named pipe, a device) is written as a stream.
            self.regular = stat.S_ISREG(info.st_mode)
            size = end = info.st_size if self.regular else 0
            if self.regular:
                end = _last_line_end(fd, size)
                if end != size:
                    os.ftruncate(fd, end)
                    os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            raise UsageError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        except BaseException:
            os.close(fd)
            raise
        self.fd, self.offset = fd, end
        return size - end

    def write(self, data: bytes, lines: int) -> None:
        fd = self.fd
        assert fd is not None
        try:
            with writing(self.path, f"appending {lines:,} log lines"):
                if self.regular:
                    write_at(fd, data, self.offset)
                    os.fsync(fd)
                else:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
        except FileWriteError as exc:
            if self.regular:
                with contextlib.suppress(OSError):  # no unfinished line: it is read again
                    os.ftruncate(fd, self.offset)
            raise _Stop(
                f"{exc}; the batch was not acknowledged and is written again by the next run"
            ) from None
        self.offset += len(data)

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)


def _last_line_end(fd: int, size: int) -> int:
    """Where the last complete line of the file ends (``size`` if it ends in a newline)."""
    end = size
    chunk = 65_536
    while end > 0:
        start = max(0, end - chunk)
        data = os.pread(fd, end - start, start)
        if end == size and data.endswith(b"\n"):
            return size
        cut = data.rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0


# -- options -----------------------------------------------------------------------------------

_NAME: Final = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def _name(text: str) -> str:
    if not _NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"must be 1 to 100 letters, digits, '.', '_', ':' or '-': {text!r}"
        )
    return text


def _default_consumer() -> str:
    """This host's name: a tail restarted on the same host continues its own pending entries."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:100]
    return host or "tail"


def _configure(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("what to read")
    source.add_argument(
        "--redis", metavar="URL", required=True, help="the Redis the watch workers write to"
    )
    source.add_argument(
        "--stream",
        metavar="PREFIX",
        help="the streams' name prefix, as given to logs watch (sendcloud-async:logs)",
    )
    source.add_argument(
        "--group",
        type=_name,
        default=DEFAULT_GROUP,
        metavar="NAME",
        help=f"the consumer group: tails of one group share the work ({DEFAULT_GROUP})",
    )
    source.add_argument(
        "--consumer",
        type=_name,
        default=None,
        metavar="NAME",
        help="this tail's name in the group (this host's name); give each tail its own",
    )
    source.add_argument(
        "--start",
        choices=("all", "now"),
        default="all",
        help="where a group this tail creates starts: every entry (all, default) or the "
        "entries written from now on (now)",
    )
    source.add_argument(
        "--claim-idle",
        type=seconds,
        default=DEFAULT_CLAIM_IDLE,
        metavar="S",
        help="take over entries another consumer read but did not acknowledge for S seconds "
        f"(a tail that died) ({DEFAULT_CLAIM_IDLE:g})",
    )
    source.add_argument(
        "--scan-interval",
        type=seconds,
        default=DEFAULT_SCAN_INTERVAL,
        metavar="S",
        help=f"look for new account streams every S seconds ({DEFAULT_SCAN_INTERVAL:g})",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--out",
        metavar="FILE",
        default="-",
        help="append the JSON Lines to FILE (default: standard output)",
    )
    output.add_argument(
        "--once",
        action="store_true",
        help="write what is there (pending entries included) and exit",
    )


def _check(args: argparse.Namespace) -> None:
    check_redis_url(args.redis)
    if args.out != "-" and Path(args.out).is_dir():
        raise UsageError(f"--out {args.out} is a directory; name a file")


# -- the command -------------------------------------------------------------------------------


class _Status:
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


class _Tail:
    """The loop: discover, recover, read, write, acknowledge; until stopped (or drained)."""

    def __init__(
        self,
        args: argparse.Namespace,
        ctx: Context,
        tail: StreamTail,
        sink: _Sink,
        stop: asyncio.Event,
    ) -> None:
        self.args = args
        self.ctx = ctx
        self.tail = tail
        self.sink = sink
        self.stop = stop
        self.status = _Status()
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


def _run(args: argparse.Namespace, ctx: Context) -> int:
    """Check everything (exit 2 on a refusal, before Redis is asked and before the output
    is touched), open the output, then tail until stopped (or drained)."""
    require_redis_extra()
    from .._redis_tail import StreamTail
    from .._redis_watch import DEFAULT_STREAM_PREFIX, RedisWatchStore

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
    sink: _Sink
    if args.out == "-":
        sink = _StdoutSink(ctx.stdout)
    else:
        file_sink = _FileSink(Path(args.out))
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


async def _main(args: argparse.Namespace, ctx: Context, tail: StreamTail, sink: _Sink) -> int:
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
        runner = _Tail(args, ctx, tail, sink, stop)
        failure: str | None = None
        try:
            await runner.run()
        except StateUnavailableError as exc:
            failure = one_line(exc)
        except StateConfigurationError as exc:
            if exc.reason == "database":
                raise UsageError(f"--redis: {exc}") from None
            failure = one_line(exc)
        except _Stop as exc:
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


LOGS_TAIL = Handlers(
    configure=_configure,
    run=_run,
    check=_check,
)
