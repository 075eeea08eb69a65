"""``logs watch``: append new exception logs to a file (or one per account), exactly once.

The files are ``FileWatchStore``'s (``_watch_files``): each account's output
``FILE`` has its watch state beside it, ``FILE.watch.json``, and each batch (a page
at most) is committed to both through a ``FileSink``: every log lands in ``FILE``
exactly once, whenever the process dies. Every output is opened (checked, locked,
cut back to its state) before any request; the store's refusals are the command's
usage errors (exit 2). An output of parts (a URL, or ``--format parquet``:
``_defaults.writes_parts``) is ``watch_parts.PartsStore``'s.

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
import functools
import random
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, ClassVar, Final

from .._defaults import writes_parts
from .._engine import run_due
from .._errors import InvalidInputError
from .._watch_files import FileWatchStore
from .._watchers import (
    AccountFailed,
    AccountPolled,
    LogWatcher,
    NewLogs,
    WatchEvent,
    WatchStore,
)
from .accounts import open_accounts
from .clients import auth_for, maybe_fake, rate_limit
from .common import EXIT_FAILURE, EXIT_OK, FAKE_SOURCE, PROG, UsageError, one_line
from .context import Context
from .credentials import Credentials, command_credentials
from .destination import make_directory
from .progress import Status, countdown
from .redis_watch import run_redis
from .signals import run as run_stoppable
from .watch_events import announce, open_events

if TYPE_CHECKING:
    from ..testing import FakeSendcloud
    from .watch_parts import PartsStore

__all__ = ["run"]

#: The one account of ``--out FILE``.
SINGLE: Final = "default"


class _FileStore(FileWatchStore):
    """The library's store, its advice in the command's words."""

    _format_advice: ClassVar[str] = "drop --format or pick another output"


# -- the status line and the events --------------------------------------------------------


@dataclass(slots=True)
class _Status:
    """What the live line shows, per account and in total."""

    names: list[str]
    new_logs: Counter[str] = field(default_factory=Counter)
    last_poll: dict[str, float] = field(default_factory=dict)
    next_poll: dict[str, float | None] = field(default_factory=dict)
    failing: dict[str, tuple[int, ...]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    #: Logs that arrived behind the mark (from the lookback window), and the worst lateness.
    late: int = 0
    worst_late: float = 0.0

    def text(self, upcoming: float | None = None) -> str:
        """The live line; ``upcoming``: seconds to the next poll (default: now's)."""
        parts = [f"{self.new_logs.total():,} new logs"]
        if len(self.names) > 1:
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
            "new_logs": self.new_logs.total(),
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
            status.new_logs[event.account] += len(event.items)
            if event.late:
                self.late(event)
        elif isinstance(event, AccountPolled):
            status.failed.pop(event.account, None)
            status.last_poll[event.account] = event.polled_at
            status.next_poll[event.account] = event.next_poll
            status.failing[event.account] = event.failing
        elif isinstance(event, AccountFailed):
            status.failed[event.account] = one_line(event.error)
            # --once: the account is not polled again (the command exits 1).
            retry_in = event.retry_in if event.retrying else None
            status.next_poll[event.account] = None if retry_in is None else time.time() + retry_in
            who = "" if self.single else f"account {event.account}: "
            then = "not retried (--once)" if retry_in is None else f"retrying in {retry_in:.0f} s"
            self.ctx.progress.message(
                f"{PROG}: {who}poll failed: {one_line(event.error)}; {then}",
                level="warning",
                event="poll_failed",
                account=event.account,
                error=one_line(event.error),
                failures=event.failures,
                retry_in=None if retry_in is None else round(retry_in, 1),
            )
        else:
            announce(self.ctx.progress, self.events, event, single=self.single)
        self.draw(force=isinstance(event, AccountPolled | AccountFailed))

    def late(self, event: NewLogs) -> None:
        """Logs that became visible behind the mark: say so, so the window can be sized."""
        status = self.status
        status.late += len(event.late)
        status.worst_late = max(status.worst_late, event.lateness)
        announce(
            self.ctx.progress, self.events, event, single=self.single, worst_late=status.worst_late
        )


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


# -- the watch into files ------------------------------------------------------------------------


@dataclass(slots=True)
class _Target:
    name: str
    base_url: str
    integration_id: int | None
    #: ``None``: ``--fake`` with none in the environment (see ``clients.auth_for``).
    credentials: Credentials | None


def run(args: argparse.Namespace, ctx: Context) -> int:
    """``logs watch`` with checked options: check everything and open every output (exit 2
    on a refusal), then watch (``--redis``: ``redis_watch``)."""
    if args.redis is not None:
        return run_redis(args, ctx)
    if args.accounts is None:
        credentials, url = command_credentials(ctx.env, fake=args.fake)
        targets = [_Target(SINGLE, url, args.integration, credentials)]
    else:
        targets = [
            _Target(
                a.name, FAKE_SOURCE if args.fake else a.base_url, a.integration_id, a.credentials
            )
            for a in open_accounts(Path(args.accounts), ctx.env, ctx.warn)
        ]
    many = args.accounts is not None
    out: str = args.out_dir if many else args.out
    parts: PartsStore | None = None
    #: The files of the accounts of each source (``FileWatchStore`` checks it on resume).
    files: dict[str, FileWatchStore] = {}
    if writes_parts(out, args.format):
        from .watch_parts import PartsStore  # here: a watch into files loads no parts code

        parts = PartsStore(args)
        for target in targets:
            label = f"account {target.name}: " if many else ""
            parts.add(target.name, out, source=target.base_url, label=label, account_column=many)
    else:
        make_directory(Path(out) if many else Path(out).parent, what=f"into {out}" if many else out)
    events: IO[str] | None = None
    try:
        for target in targets:
            if parts is None:
                _open_file(files, target, args, many=many)
            else:
                parts.outputs[target.name].open(target.integration_id)
        events = open_events(args.events)
        reporter = _Reporter(ctx, [t.name for t in targets], events)
        if args.once:
            ctx.progress.status_off()  # for cron: the summary (and what went wrong) only
        store_of: Callable[[_Target], WatchStore] = (
            (lambda t: files[t.base_url]) if parts is None else (lambda t: parts)
        )
        # Ctrl-C and SIGTERM: ``main`` prints the interrupt hint and gives the status.
        watch = functools.partial(_watch, args, ctx, targets, store_of, reporter)
        failed = run_stoppable(watch() if parts is None else parts.watching(watch))
    finally:
        if parts is not None:
            parts.close()
        for store in files.values():
            store.close()
        if events is not None:
            events.close()
    ctx.progress.finish()
    if parts is None:
        verb, total = "appended", sum(sum(s.records.values()) for s in files.values())
    else:
        verb, total = parts.verb, sum(o.records for o in parts.outputs.values())
    new = reporter.status.new_logs.total()
    late = reporter.status.late
    worst = reporter.status.worst_late
    ctx.result(
        f"{verb} {new:,} new logs ({total:,} in all)"
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


def _open_file(
    files: dict[str, FileWatchStore], target: _Target, args: argparse.Namespace, *, many: bool
) -> None:
    """Open ``target``'s file (``--out-dir DIR``: ``DIR/NAME.jsonl``) before any request;
    the store's refusal is a ``UsageError`` naming the account (``--accounts``)."""
    label = f"account {target.name}: " if many else ""
    try:
        store = files.get(target.base_url)
        if store is None:
            store = files[target.base_url] = _FileStore(
                args.out_dir if many else None,
                format=args.format,
                source=target.base_url,
                paths=None if many else {SINGLE: args.out},
            )
        store.open(target.name, integration_id=target.integration_id)
    except InvalidInputError as exc:
        raise UsageError(f"{label}{exc}") from None


async def _watch(
    args: argparse.Namespace,
    ctx: Context,
    targets: list[_Target],
    store_of: Callable[[_Target], WatchStore],
    reporter: _Reporter,
) -> set[str]:
    """Watch until stopped (or once); the accounts whose last poll failed."""
    from .._pool import AccountPool  # here: --help and --version do not load aiohttp

    names = [t.name for t in targets]
    async with maybe_fake(args.fake) as fake, ctx.live(accounts=names), AsyncExitStack() as stack:
        if fake is not None:
            stack.callback(asyncio.create_task(_feed(fake, random.Random())).cancel)
        groups: dict[str, list[_Target]] = {}
        for target in targets:
            groups.setdefault(target.base_url if fake is None else fake.base_url, []).append(target)
        watchers = []
        for url, group in groups.items():
            pool = AccountPool(
                base_url=url,
                timeout=args.timeout,
                max_retries=args.max_retries,
                rate_limit=rate_limit(args),
                connections=max(10, 2 * args.concurrency),
            )
            stack.push_async_callback(pool.aclose)
            watchers.append(
                LogWatcher(
                    pool,
                    {t.name: auth_for(t.credentials, fake) for t in group},
                    store=store_of(group[0]),
                    start=args.start,
                    interval=args.interval,
                    page_size=args.page_size,
                    concurrency=args.concurrency,
                    integrations={
                        t.name: t.integration_id for t in group if t.integration_id is not None
                    },
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
        # One watcher per base URL, all at once: one that fails stops (and awaits) the others.
        await run_due(
            watchers, lambda w: w.run(reporter, once=args.once), concurrency=len(watchers)
        )
    return set(reporter.status.failed)
