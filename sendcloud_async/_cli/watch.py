"""``logs watch``: append new exception logs to a file (or one per account), exactly once.

Each account's output ``FILE`` has its watch state beside it, ``FILE.watch.json``:
the ``AccountState`` of ``LogWatcher`` plus ``offset``, the bytes of ``FILE`` that
hold committed logs. Per batch (a page at most), the same technique as
``logs export``: the logs are written at ``offset`` and fsync-ed, then the state
is replaced atomically (temporary file, fsync, rename, directory fsync). On
start, ``FILE`` is cut back to ``offset``, so a batch written by a run killed
before its state was saved is dropped and fetched again: every log lands in
``FILE`` exactly once, whenever the process dies.

Ctrl-C and SIGTERM let the batch in hand finish and save its state; the watch runs
until it is stopped, so that ends it with status 0 (``--once``, stopped before it
finished: 130 or 143; see ``exits``).
Health transitions are printed on stderr (and appended to ``--events FILE`` as
JSON lines); they are reported at least once (a kill between the line and the
state repeats it on restart).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

import msgspec

from .._auth import Auth
from .._defaults import DEFAULT_WATCH_INTERVAL, DEFAULT_WATCH_START
from .._errors import InvalidInputError
from .._export import FORMATS, _complete, _write_all, csv_header, encode_csv, encode_jsonl
from .._fileio import lock_exclusively, output_file_problem, writing
from .._models import IntegrationLog
from .._watch import DEFAULT_LOOKBACK, check_start
from .._watchers import (
    AccountFailed,
    AccountPolled,
    AccountState,
    IntegrationFailing,
    LogWatcher,
    NewLogs,
    WatchEvent,
    atomic_write,
    decode_account_state,
)
from .accounts import open_accounts
from .clients import auth_for, maybe_fake, rate_limit
from .command import Command
from .common import (
    EXIT_FAILURE,
    EXIT_OK,
    FAKE_SOURCE,
    PROG,
    UsageError,
    extension,
    one_line,
)
from .context import Context
from .credentials import Credentials, command_credentials
from .destination import make_directory
from .exits import UntilStopped
from .formats import format_for
from .options import listing_options, lookback_seconds, positive, seconds
from .progress import Status, countdown
from .redis_watch import add_redis_options, check_redis, run_redis
from .signals import run as run_stoppable
from .watch_events import ENCODER as _ENCODER
from .watch_events import event_line as _event_line
from .watch_events import event_record as _event_record
from .watch_events import late_line, late_record

if sys.platform != "win32":
    pass

if TYPE_CHECKING:
    from .._pool import AccountPool
    from ..testing import FakeSendcloud

__all__ = ["LOGS_WATCH", "STATE_SUFFIX", "WatchFile", "state_path"]

STATE_SUFFIX: Final = ".watch.json"
WATCH_FILE_VERSION: Final = 1
DEFAULT_WATCH_CONCURRENCY: Final = 10
#: The one account of ``--out FILE``.
SINGLE: Final = "default"


class WatchFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``FILE.watch.json``: the first ``offset`` bytes of ``FILE`` hold ``records`` logs."""

    version: int = WATCH_FILE_VERSION
    source: str
    format: str
    offset: int
    records: int
    state: AccountState


def state_path(out: Path) -> Path:
    """The watch state of the output ``out``: ``out + ".watch.json"``."""
    return out.with_name(out.name + STATE_SUFFIX)


# -- the outputs -----------------------------------------------------------------------------


class _Output:
    """One account's output file and its state, locked while the watch runs."""

    def __init__(self, path: Path, *, fmt: str, source: str, label: str) -> None:
        self.path = path
        self.state_path = state_path(path)
        self.fmt = fmt
        self.source = source
        self.label = label
        self.encode: Callable[[list[IntegrationLog]], bytes] = (
            encode_csv if fmt == "csv" else encode_jsonl
        )
        self.fd: int | None = None
        self.saved: WatchFile | None = None
        self.offset = 0
        self.records = 0

    def open(self, integration_id: int | None) -> None:
        """Check the state, lock the file, cut it back to the saved offset. Sends nothing."""
        saved = self._read()
        if saved is not None:
            if saved.source != self.source:
                raise UsageError(
                    f"{self.label}{self.state_path} is the state of a watch of {saved.source}, "
                    f"not of {self.source}; pick another output"
                )
            if saved.format != self.fmt:
                raise UsageError(
                    f"{self.label}{self.path} holds {saved.format}, not {self.fmt}; "
                    "drop --format or pick another output"
                )
            if saved.state.logs.integration_id != integration_id:
                raise UsageError(
                    f"{self.label}{self.state_path} watches another integration; "
                    "pick another output"
                )
        problem = output_file_problem(self.path)
        if problem is not None:
            raise UsageError(f"{self.label}cannot write {self.path}: {problem}")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o666)
        except OSError as exc:
            raise UsageError(f"{self.label}cannot write {self.path}: {exc.strerror}") from None
        try:
            if not lock_exclusively(fd):
                raise UsageError(f"{self.label}another watch is writing {self.path} (it is locked)")
            size = os.fstat(fd).st_size
            if saved is None:
                self.offset = size
                if size == 0 and self.fmt == "csv":
                    header = csv_header()
                    with writing(self.path, "writing the CSV header"):
                        _write_all(fd, header, 0)
                        os.fsync(fd)
                    self.offset = len(header)
            else:
                if size < saved.offset:
                    raise UsageError(
                        f"{self.label}{self.path} has {size:,} bytes but its watch state says "
                        f"{saved.offset:,} were written; it was changed behind the watch's back"
                    )
                with writing(self.path, "cutting it back to the end its watch state saved"):
                    os.ftruncate(fd, saved.offset)
                    os.fsync(fd)
                self.offset = saved.offset
                self.records = saved.records
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.saved = saved

    def _read(self) -> WatchFile | None:
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UsageError(f"{self.label}cannot read {self.state_path}: {exc.strerror}") from None
        try:
            saved = msgspec.json.decode(raw, type=WatchFile)
            decode_account_state(_ENCODER.encode(saved.state), self.state_path)
        except (msgspec.DecodeError, msgspec.ValidationError, InvalidInputError) as exc:
            raise UsageError(
                f"{self.label}the watch state {self.state_path} is damaged ({exc}); "
                "move it away to start over"
            ) from None
        if saved.version != WATCH_FILE_VERSION or saved.offset < 0 or saved.records < 0:
            raise UsageError(f"{self.label}the watch state {self.state_path} is damaged")
        return saved

    def commit(self, state: AccountState, logs: list[IntegrationLog]) -> None:
        """Append ``logs`` and fsync, then replace the state (runs in a worker thread)."""
        fd = self.fd
        assert fd is not None
        data = self.encode(logs) if logs else b""
        if data:
            with writing(self.path, "appending the new logs"):
                _write_all(fd, data, self.offset)
                os.fsync(fd)
        saved = WatchFile(
            source=self.source,
            format=self.fmt,
            offset=self.offset + len(data),
            records=self.records + len(logs),
            state=state,
        )
        with writing(self.state_path, "saving the watch state"):
            atomic_write(self.state_path, _ENCODER.encode(saved) + b"\n")
        self.offset, self.records, self.saved = saved.offset, saved.records, saved

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)


class FileStore:
    """The ``WatchStore`` of the command: logs and state of a batch committed together."""

    def __init__(self) -> None:
        self.outputs: dict[str, _Output] = {}

    async def load(self, account: str) -> AccountState | None:
        saved = self.outputs[account].saved
        return None if saved is None else saved.state

    async def save(self, account: str, state: AccountState, logs: Sequence[IntegrationLog]) -> None:
        output = self.outputs[account]
        items = list(logs)
        loop = asyncio.get_running_loop()
        # Finished even if the watch is being stopped: the state must match the file.
        await _complete(loop.run_in_executor(None, output.commit, state, items))

    def close(self) -> None:
        for output in self.outputs.values():
            output.close()


# -- the status line and the events --------------------------------------------------------


@dataclass(slots=True)
class _Status:
    """What the live line shows, per account and in total."""

    names: list[str]
    new_logs: dict[str, int] = field(default_factory=dict)
    last_poll: dict[str, float] = field(default_factory=dict)
    next_poll: dict[str, float | None] = field(default_factory=dict)
    failing: dict[str, tuple[int, ...]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    #: Logs that arrived behind the mark (from the lookback window), and the worst lateness.
    late: int = 0
    worst_late: float = 0.0

    def text(self, upcoming: float | None = None) -> str:
        """The live line; ``upcoming``: seconds to the next poll (default: now's)."""
        total = sum(self.new_logs.values())
        parts = [f"{total:,} new logs"]
        if len(self.names) == 1:
            name = self.names[0]
            parts = [f"{self.new_logs.get(name, 0):,} new logs"]
        else:
            parts.insert(0, f"{len(self.names)} accounts")
        if self.last_poll:
            name, at = max(self.last_poll.items(), key=lambda item: item[1])
            when = datetime.fromtimestamp(at).strftime("%H:%M:%S")
            parts.append(f"last poll {when}" + ("" if len(self.names) == 1 else f" ({name})"))
        if upcoming is None:
            upcoming = self.next_poll_in()
        if upcoming is not None:
            parts.append(f"next poll in {countdown(upcoming)} s")
        failing = [
            (f"#{i}" if len(self.names) == 1 else f"{name}#{i}")
            for name, ids in self.failing.items()
            for i in ids
        ]
        parts.append("failing integrations: " + (", ".join(failing[:5]) if failing else "none"))
        if len(failing) > 5:
            parts[-1] += f" (+{len(failing) - 5})"
        if self.late:
            parts.append(f"{self.late:,} late (worst {self.worst_late:.1f} s behind)")
        if self.failed:
            parts.append(f"{len(self.failed)} account(s) failing to poll")
        return " · ".join(parts)

    def next_poll_in(self) -> float | None:
        """Seconds until the next poll of any account (``None``: none planned)."""
        upcoming = [t for t in self.next_poll.values() if t is not None]
        return max(0.0, min(upcoming) - time.time()) if upcoming else None

    def snapshot(self) -> Status:
        """The status: the text above; a change is new logs or failures, not a clock."""
        failing = {name: list(ids) for name, ids in sorted(self.failing.items()) if ids}
        last = max(self.last_poll.values(), default=None)
        upcoming = self.next_poll_in()
        fields: dict[str, object] = {
            "accounts": len(self.names),
            "new_logs": sum(self.new_logs.values()),
            "last_poll": None if last is None else datetime.fromtimestamp(last, UTC),
            "next_poll_in": None if upcoming is None else round(upcoming, 1),
            "failing_integrations": failing,
            "failing_accounts": dict(sorted(self.failed.items())),
        }
        key = (
            tuple(sorted(self.new_logs.items())),
            tuple(failing.items()),
            tuple(sorted(self.failed)),
        )
        return Status(self.text(upcoming), fields, key)


class _Reporter:
    """The handler of every ``WatchEvent``: the live line, stderr lines, the events file."""

    def __init__(self, ctx: Context, names: list[str], events: IO[str] | None) -> None:
        self.ctx = ctx
        self.status = _Status(names)
        self.events = events
        self.single = len(names) == 1
        ctx.progress.follow(self.status.snapshot)

    def draw(self, *, force: bool = False) -> None:
        self.ctx.progress.refresh(force=force)

    def __call__(self, event: WatchEvent) -> None:
        status = self.status
        if isinstance(event, NewLogs):
            status.new_logs[event.account] = status.new_logs.get(event.account, 0) + len(
                event.items
            )
            if event.late:
                self.late(event)
        elif isinstance(event, AccountPolled):
            status.failed.pop(event.account, None)
            status.last_poll[event.account] = event.polled_at
            status.next_poll[event.account] = event.next_poll
            status.failing[event.account] = event.failing
        elif isinstance(event, AccountFailed):
            status.failed[event.account] = one_line(event.error)
            status.next_poll[event.account] = time.time() + event.retry_in
            who = "" if self.single else f"account {event.account}: "
            self.ctx.progress.message(
                f"{PROG}: {who}poll failed: {one_line(event.error)}; "
                f"retrying in {event.retry_in:.0f} s",
                level="warning",
                event="poll_failed",
                account=event.account,
                error=one_line(event.error),
                failures=event.failures,
                retry_in=round(event.retry_in, 1),
            )
        else:
            record = _event_record(event)
            self.ctx.progress.message(
                _event_line(event, self.single),
                level="warning" if isinstance(event, IntegrationFailing) else "info",
                event=str(record["event"]),
                **{key: value for key, value in record.items() if key != "event"},
            )
            if self.events is not None:
                self.events.write(_ENCODER.encode(record).decode() + "\n")
                self.events.flush()
        self.draw(force=isinstance(event, AccountPolled | AccountFailed))

    def late(self, event: NewLogs) -> None:
        """Logs that became visible behind the mark: say so, so the window can be sized."""
        status = self.status
        status.late += len(event.late)
        status.worst_late = max(status.worst_late, event.lateness)
        record = late_record(event)
        self.ctx.progress.message(
            late_line(event, self.single, status.worst_late),
            level="info",
            event="late_logs",
            **{key: value for key, value in record.items() if key != "event"},
        )
        if self.events is not None:
            self.events.write(_ENCODER.encode(record).decode() + "\n")
            self.events.flush()


# -- --fake: logs keep coming ------------------------------------------------------------------


async def _feed(fake: FakeSendcloud, rng: random.Random) -> None:
    """A few new logs a second; now and then an integration starts or stops failing."""
    ids = sorted(fake.integrations)
    while True:
        await asyncio.sleep(rng.uniform(0.1, 0.5))
        fake.add_log(
            rng.choice(ids),
            exception_type="requests.exceptions.HTTPError",
            exception=rng.choice(("502 Bad Gateway", "Order not found", "Read timed out")),
            response_code=rng.choice((404, 500, 502, None)),
        )
        if rng.random() < 0.05:
            ident = rng.choice(ids)
            if fake.integrations[ident].get("started_failing_at"):
                fake.stop_failing(ident)
            else:
                fake.start_failing(ident)


# -- the command --------------------------------------------------------------------------------


def _start(text: str) -> str | datetime:
    if text in ("now", "all"):
        return text
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not now, all or an ISO 8601 date-time: {text!r}"
        ) from None
    try:
        check_start(value)
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(f"{exc}: {text!r}") from None
    return value


def _configure(watch: argparse.ArgumentParser) -> None:
    output = watch.add_argument_group("output")
    output.add_argument("--out", metavar="FILE", help="append new logs to FILE")
    output.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="jsonl or csv (default: from the file name's extension, else jsonl)",
    )
    output.add_argument(
        "--events", metavar="FILE", help="also append integration health events as JSON lines"
    )
    what = watch.add_argument_group("what to watch")
    what.add_argument(
        "--start",
        type=_start,
        default=DEFAULT_WATCH_START,
        metavar="now|all|ISO-8601",
        help="without a saved state: logs created after now (default), all of them, or after "
        "an aware date-time",
    )
    what.add_argument(
        "--interval",
        type=seconds,
        default=DEFAULT_WATCH_INTERVAL,
        metavar="S",
        help="seconds between polls of an account (60)",
    )
    what.add_argument(
        "--lookback",
        type=lookback_seconds,
        default=DEFAULT_LOOKBACK.total_seconds(),
        metavar="S",
        help="every poll also re-reads S seconds behind the newest log delivered, so that "
        f"a log that becomes visible late is still written once "
        f"({DEFAULT_LOOKBACK.total_seconds():g}; 0: no window)",
    )
    what.add_argument("--once", action="store_true", help="poll once, append, exit (for cron)")
    listing_options(what)
    many = watch.add_argument_group("many accounts")
    many.add_argument(
        "--accounts", metavar="TOML", help="watch every account of this file (needs --out-dir)"
    )
    many.add_argument("--out-dir", metavar="DIR", help="DIR/NAME.jsonl per account")
    many.add_argument(
        "--concurrency",
        type=positive,
        default=None,
        metavar="N",
        help=f"accounts polled at once with --accounts ({DEFAULT_WATCH_CONCURRENCY})",
    )
    add_redis_options(watch)


def _check(args: argparse.Namespace) -> None:
    if check_redis(args):
        return
    if (args.out is None) == (args.accounts is None):
        raise UsageError("say where to write: --out FILE, or --accounts TOML --out-dir DIR")
    if args.out == "-":
        raise UsageError("--out needs a file: the watch state is kept beside it")
    if args.accounts is None:
        if args.out_dir is not None:
            raise UsageError("--out-dir goes with --accounts; for one account use --out FILE")
        if args.concurrency is not None:
            raise UsageError("--concurrency goes with --accounts")
    else:
        if args.out_dir is None:
            raise UsageError("--accounts needs --out-dir DIR (each account gets DIR/NAME.jsonl)")
        if args.integration is not None:
            raise UsageError(
                "--integration cannot be used with --accounts; set integration = ID in the "
                "account's table"
            )
    args.format = format_for(args.out, args.format)
    if args.concurrency is None:
        args.concurrency = DEFAULT_WATCH_CONCURRENCY


@dataclass(slots=True)
class _Target:
    name: str
    base_url: str
    integration_id: int | None
    #: ``None``: ``--fake`` with none in the environment (see ``clients.auth_for``).
    credentials: Credentials | None


def _run(args: argparse.Namespace, ctx: Context) -> int:
    """Check everything and open every output (exit 2 on a refusal), then watch."""
    if args.redis is not None:
        return run_redis(args, ctx)
    targets: list[_Target] = []
    store = FileStore()
    if args.accounts is None:
        credentials, url = command_credentials(ctx.env, fake=args.fake)
        out = Path(args.out)
        make_directory(out.parent, what=str(out))
        targets.append(_Target(SINGLE, url, args.integration, credentials))
        store.outputs[SINGLE] = _Output(out, fmt=args.format, source=url, label="")
    else:
        path = Path(args.accounts)
        accounts = open_accounts(path, ctx.env, ctx.warn)
        out_dir = Path(args.out_dir)
        make_directory(out_dir, what=f"into {out_dir}")
        for account in accounts:
            source = FAKE_SOURCE if args.fake else account.base_url
            targets.append(
                _Target(account.name, source, account.integration_id, account.credentials)
            )
            store.outputs[account.name] = _Output(
                out_dir / f"{account.name}.{extension(args.format)}",
                fmt=args.format,
                source=source,
                label=f"account {account.name}: ",
            )
    events: IO[str] | None = None
    try:
        for target in targets:
            store.outputs[target.name].open(target.integration_id)
        if args.events is not None:
            try:
                events = open(args.events, "a", encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                raise UsageError(f"cannot write {args.events}: {exc.strerror}") from None
        reporter = _Reporter(ctx, [t.name for t in targets], events)
        if args.once:
            ctx.progress.status_off()  # for cron: the summary (and what went wrong) only
        # Ctrl-C and SIGTERM: ``main`` prints the interrupt hint and gives the status.
        failed = run_stoppable(_watch(args, ctx, targets, store, reporter))
    finally:
        store.close()
        if events is not None:
            events.close()
    ctx.progress.finish()
    total = sum(o.records for o in store.outputs.values())
    new = sum(reporter.status.new_logs.values())
    late = reporter.status.late
    worst = reporter.status.worst_late
    ctx.result(
        f"appended {new:,} new logs ({total:,} in all)"
        + (f"; {late:,} arrived late, the worst {worst:.1f} s behind" if late else ""),
        event="summary",
        new_logs=new,
        late_logs=late,
        worst_lateness_s=round(worst, 3),
        records=total,
        accounts=len(targets),
        failed_accounts=sorted(failed),
    )
    if failed:
        ctx.error(
            f"{len(failed)} account(s) could not be polled: {', '.join(sorted(failed))}",
            failed_accounts=sorted(failed),
        )
        return EXIT_FAILURE
    return EXIT_OK


async def _watch(
    args: argparse.Namespace,
    ctx: Context,
    targets: list[_Target],
    store: FileStore,
    reporter: _Reporter,
) -> set[str]:
    """Watch until stopped (or once); the accounts whose last poll failed."""
    from .._pool import AccountPool  # here: --help and --version do not load aiohttp

    async with maybe_fake(args.fake) as fake, ctx.live():
        feeder = None
        if fake is not None:
            feeder = asyncio.create_task(_feed(fake, random.Random()))
        pools: dict[str, AccountPool] = {}
        try:
            groups: dict[str, dict[str, Auth]] = {}
            for target in targets:
                url = fake.base_url if fake is not None else target.base_url
                groups.setdefault(url, {})[target.name] = auth_for(target.credentials, fake)
            watchers = []
            for url, accounts in groups.items():
                pool = AccountPool(
                    base_url=url,
                    timeout=args.timeout,
                    max_retries=args.max_retries,
                    rate_limit=rate_limit(args),
                    connections=max(10, 2 * args.concurrency),
                )
                pools[url] = pool
                scoped = {
                    t.name: t.integration_id
                    for t in targets
                    if t.name in accounts and t.integration_id is not None
                }
                watchers.append(
                    LogWatcher(
                        pool,
                        accounts,
                        store=store,
                        start=args.start,
                        interval=args.interval,
                        page_size=args.page_size,
                        concurrency=args.concurrency,
                        integrations=scoped,
                        lookback=args.lookback,
                    )
                )
            if not (args.once or ctx.quiet) and ctx.progress.style != "plain":
                # Off a terminal the log says when a watch started (the status comes later).
                count = f"{len(targets)} accounts" if len(targets) > 1 else "1 account"
                ctx.progress.log(
                    "info",
                    f"watching {count}, polling every {args.interval:g} s",
                    event="started",
                    accounts=len(targets),
                    interval=args.interval,
                )
            reporter.draw(force=True)
            await asyncio.gather(*(w.run(reporter, once=args.once) for w in watchers))
        finally:
            if feeder is not None:
                feeder.cancel()
            for pool in pools.values():
                await pool.aclose()
    return set(reporter.status.failed)


LOGS_WATCH = Command(
    words=("logs", "watch"),
    help="append new exception logs to a file as they come, exactly once",
    description="Poll for new exception logs and append them to FILE (JSON Lines or CSV), "
    "or to DIR/NAME.jsonl for every account of an accounts file. After every batch the "
    "file is fsync-ed and the watch state beside it (FILE.watch.json) is replaced "
    "atomically, so a restart after a kill continues exactly after the last saved batch: "
    "every log is written once. Integrations that start or stop failing are printed on "
    "stderr (and appended to --events FILE). Ctrl-C or SIGTERM lets the batch in hand "
    "finish and saves the state.",
    configure=_configure,
    run=_run,
    check=_check,
    examples=(
        f"{PROG} logs watch --out logs.jsonl",
        f"{PROG} logs watch --out logs.csv --start all --once     # for cron",
        f"{PROG} logs watch --accounts accounts.toml --out-dir watch/ --events health.jsonl",
        f"{PROG} logs watch --fake --out demo.jsonl --interval 2  # logs keep coming",
    ),
    interrupt_hint=f"{PROG}: stopped; every log written so far is saved",
    until_stopped=UntilStopped("without --once", lambda args: not args.once),
)
