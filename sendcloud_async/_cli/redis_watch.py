"""``logs watch --accounts FILE --redis URL``: one of many workers sharing a watch through Redis.

Every worker runs the same command with the same accounts file. The accounts are
split by leases in Redis (``RedisWatchCoordinator``); each new log goes to the
stream ``PREFIX:NAME`` of its account, together with the account's watch state,
through the fence (see ``sendcloud_async/_redis/_watch/``). The status line
shows the accounts this worker holds, the ones failing, and since when Redis is
unreachable while it is. Every state change of the coordinator is a line on stderr
and a record in ``--events`` (``watch_events.coordinator_record``). Ctrl-C and
SIGTERM release the leases and exit 0. A Redis that refuses the URL's credentials
or user ends the run with status 1, a database it does not have with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Coroutine, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from yarl import URL

from .._defaults import DEFAULT_WATCH_LEASE
from .._errors import InvalidInputError, StateUnavailableError, missing_extra
from .._watchers import IntegrationFailing, IntegrationRecovered, NewLogs, WatchEvent
from .accounts import Account, open_accounts
from .clients import rate_limit
from .common import EXIT_OK, PROG, UsageError
from .context import Context
from .progress import Status
from .signals import run as run_stoppable

if TYPE_CHECKING:
    from .._auth import Auth
    from .._redis._watch import AccountWatch, Commit, CoordinatorEvent

__all__ = [
    "check_redis",
    "check_redis_url",
    "require_redis_extra",
    "run_redis",
]

_SCHEMES = ("redis", "rediss", "unix")


def check_redis(args: argparse.Namespace) -> bool:
    """Whether this is a ``--redis`` run; ``UsageError`` for options that do not go with it."""
    if args.redis is None:
        for option in ("stream", "lease"):
            if getattr(args, option) is not None:
                raise UsageError(f"--{option} goes with --redis URL")
        return False
    if args.accounts is None:
        raise UsageError("--redis needs --accounts TOML (every worker gets the same file)")
    for option, flag in (
        ("out", "--out"),
        ("out_dir", "--out-dir"),
        ("integration", "--integration"),
    ):
        if getattr(args, option) is not None:
            raise UsageError(
                f"{flag} cannot be used with --redis: new logs go to Redis Streams "
                "(set integration = ID in an account's table)"
            )
    if args.once:
        raise UsageError("--once cannot be used with --redis: workers share a running watch")
    if args.fake:
        raise UsageError("--fake cannot be used with --redis: each worker would watch its own fake")
    check_redis_url(args.redis)
    return True


def check_redis_url(text: str) -> None:
    """``UsageError`` unless ``text`` is a Redis URL (every ``--redis`` option's one check)."""
    try:
        url = URL(text)
    except ValueError:
        url = None
    if url is None or url.scheme not in _SCHEMES:
        raise UsageError("--redis must be a redis://, rediss:// or unix:// URL")
    try:
        from .._redis._rules import check_redis_url as check
    except ImportError:
        return  # the command says which extra to install
    try:
        check(text)  # a database that is not a number, a bad port
    except InvalidInputError as exc:
        raise UsageError(f"--redis: {exc}") from None


_T = TypeVar("_T")


def require_redis_extra() -> None:
    """``UsageError`` naming the ``pip install`` when the ``[redis]`` extra is missing."""
    try:
        from .. import redis as _redis  # noqa: F401  (the extra is installed)
    except ImportError:
        raise UsageError(str(missing_extra("redis", "redis", "--redis"))) from None


def run_on_redis(work: Coroutine[Any, Any, _T]) -> _T:
    """``work`` run until stopped, for a command that works through Redis.

    What the options or Redis refuse before anything is done is a usage error
    (exit 2): an invalid argument, a database the server does not have. Other
    refusals (Redis's credentials) stay errors (exit 1, the line from ``main``).
    """
    from .._errors import StateConfigurationError

    try:
        return run_stoppable(work)
    except InvalidInputError as exc:
        raise UsageError(str(exc)) from None
    except StateConfigurationError as exc:
        if exc.reason == "database":
            raise UsageError(f"--redis: {exc}") from None
        raise


def run_redis(args: argparse.Namespace, ctx: Context) -> int:
    """Load and check the accounts (exit 2 on a refusal), then work until stopped.

    Redis refusing the URL's credentials or user ends the run with status 1 (the
    error line from ``main``), a database the server does not have with status 2;
    an outage is waited out (the status line says since when).
    """
    require_redis_extra()
    from .watch_events import open_events

    accounts = open_accounts(Path(args.accounts), ctx.env, ctx.warn)
    events = open_events(args.events)
    try:
        run_on_redis(_work(args, ctx, accounts, events))
    finally:
        ctx.progress.close()
        if events is not None:
            events.close()
    return EXIT_OK


class _Status:
    """The live line: what this worker holds, the new logs it wrote, what is wrong."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.new_logs = 0
        #: Logs that arrived behind the mark (the lookback window caught them), the worst.
        self.late = 0
        self.worst_late = 0.0
        self.held: dict[str, int] = {}
        self.failing: set[str] = set()
        #: When Redis stopped answering (``None``: it answers).
        self.unreachable_since: datetime | None = None

    def snapshot(self) -> Status:
        """The status: the text, its fields, and what counts as a change."""
        names = sorted(self.held)
        shown = ", ".join(names[:5]) + (f", … (+{len(names) - 5})" if len(names) > 5 else "")
        parts = []
        since = self.unreachable_since
        if since is not None:
            parts.append(f"Redis unreachable since {since.astimezone().strftime('%H:%M:%S')}")
        parts.append(
            f"holding {len(names)}/{self.total} accounts" + (f": {shown}" if names else "")
        )
        parts.append(f"{self.new_logs:,} new logs written")
        if self.late:
            parts.append(f"{self.late:,} late (worst {self.worst_late:.1f} s behind)")
        failing = sorted(self.failing)
        if failing:
            more = f" (+{len(failing) - 5})" if len(failing) > 5 else ""
            parts.append(f"failing: {', '.join(failing[:5])}{more}")
        fields: dict[str, object] = {
            "held": len(names),
            "accounts": self.total,
            "new_logs": self.new_logs,
            "late_logs": self.late,
            "worst_lateness_s": round(self.worst_late, 3),
            "failing_accounts": failing,
            "redis_unreachable_since": since,
        }
        key = (tuple(names), self.new_logs, self.late, tuple(failing), since)
        return Status(" · ".join(parts), fields, key)


def _shown(event: CoordinatorEvent, verbose: bool) -> bool:
    """Whether ``event`` gets a line on stderr: every state change, but a plain claim or
    the release of a clean stop only with ``-v`` (the status line and ``--events`` have
    them, and there is one per account)."""
    from ..events import LeaseClaimed, LeaseReleased

    if verbose:
        return True
    if isinstance(event, LeaseClaimed):
        return event.previous is not None
    return not (isinstance(event, LeaseReleased) and event.reason == "stop")


@contextlib.contextmanager
def _events_shown_once() -> Iterator[None]:
    """While the command runs, the coordinator's own log of its events stays out of stderr:
    the command writes each event itself, with its fields."""
    from .._redis._watch import events_logger

    quiet = logging.NullHandler()  # a logger with no handler would use logging's last resort
    saved = events_logger.propagate
    events_logger.addHandler(quiet)
    events_logger.propagate = False
    try:
        yield
    finally:
        events_logger.propagate = saved
        events_logger.removeHandler(quiet)


async def _work(
    args: argparse.Namespace, ctx: Context, accounts: Sequence[Account], events: IO[str] | None
) -> None:
    from .._redis._watch import (
        DEFAULT_STREAM_PREFIX,
        RedisWatchCoordinator,
        RedisWatchStore,
        describe_event,
        log_watcher_watch,
    )
    from ..events import AccountFailing, AccountRecovered, LeaseClaimed, RedisDown, RedisUp
    from ..redis import RedisConnection, RedisState
    from .watch_events import announce, write_record
    from .watch_events import coordinator_record as _coordinator_record

    status = _Status(len(accounts))

    def on_watch_event(event: WatchEvent) -> None:
        if isinstance(event, NewLogs):
            status.new_logs += len(event.items)
            if event.late:
                status.late += len(event.late)
                status.worst_late = max(status.worst_late, event.lateness)
                announce(ctx.progress, events, event, single=False, worst_late=status.worst_late)
            ctx.progress.refresh()
        elif isinstance(event, IntegrationFailing | IntegrationRecovered):
            announce(ctx.progress, events, event, single=False)

    lease = DEFAULT_WATCH_LEASE if args.lease is None else args.lease
    async with (
        # One connection pool for the rate gates, the OAuth2 tokens and the leases.
        RedisConnection.from_url(args.redis) as connection,
        RedisState(connection, retry_interval=min(5.0, lease / 4)) as state,
        RedisWatchStore(
            connection, stream_prefix=args.stream or DEFAULT_STREAM_PREFIX, lease=lease
        ) as store,
        contextlib.AsyncExitStack() as stack,
        ctx.serving_metrics(leases=True),
    ):
        # A URL Redis refuses stops here, before anything is shown or sent (an outage
        # does not: the coordinator waits it out).
        with contextlib.suppress(StateUnavailableError):
            await store.check()

        def on_event(event: CoordinatorEvent) -> None:
            if isinstance(event, LeaseClaimed):
                status.held[event.account] = event.token
            elif isinstance(event, RedisDown):
                status.unreachable_since = event.since
            elif isinstance(event, RedisUp):
                status.unreachable_since = None
            elif isinstance(event, AccountFailing):
                status.failing.add(event.account)
            elif isinstance(event, AccountRecovered):
                status.failing.discard(event.account)
            else:  # released, lost or refused: no longer held here
                status.held.pop(event.account, None)
                status.failing.discard(event.account)
            name, level, sentence = describe_event(event)
            record = _coordinator_record(event, name, store.worker_id)
            write_record(events, record)
            if _shown(event, bool(args.verbose)):
                ctx.progress.message(
                    f"{PROG}: {sentence}",
                    level="warning" if level >= logging.WARNING else "info",
                    event=name,
                    **{key: value for key, value in record.items() if key != "event"},
                )
            ctx.progress.refresh(force=True)

        watches: dict[str, AccountWatch] = {}
        by_url: dict[str, dict[str, Auth]] = {}
        scoped: dict[str, dict[str, int]] = {}
        for account in accounts:
            by_url.setdefault(account.base_url, {})[account.name] = account.auth()
            if account.integration_id is not None:
                scoped.setdefault(account.base_url, {})[account.name] = account.integration_id
        from .._pool import AccountPool  # here: --help and --version do not load aiohttp

        for url, auths in by_url.items():
            pool = AccountPool(
                base_url=url,
                timeout=args.timeout,
                max_retries=args.max_retries,
                rate_limit=rate_limit(args),
                state=state,
            )
            stack.push_async_callback(pool.aclose)
            watch = log_watcher_watch(
                pool,
                auths,
                handler=on_watch_event,
                interval=args.interval,
                start=args.start,
                page_size=args.page_size,
                integrations=scoped.get(url, {}),
                lookback=args.lookback,
            )
            for name in auths:
                watches[name] = watch

        async def dispatch(name: str, saved: bytes | None, commit: Commit) -> None:
            await watches[name](name, saved, commit)

        coordinator = RedisWatchCoordinator(store, list(watches), dispatch, on_event=on_event)
        loop = asyncio.get_running_loop()
        if sys.platform != "win32":
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, coordinator.stop)
        ctx.progress.follow(status.snapshot)
        ctx.progress.refresh(force=True)

        # The line follows the holdings as they change (claims come in bursts).
        async with ctx.progress.ticking():
            with _events_shown_once():
                await coordinator.run()
    ctx.progress.finish()  # no status line after this one
    ctx.progress.message(
        f"{PROG}: stopped; leases released, {status.new_logs:,} new logs written by this worker"
        + (
            f" ({status.late:,} arrived late, the worst {status.worst_late:.1f} s behind)"
            if status.late
            else ""
        ),
        event="stopped",
        new_logs=status.new_logs,
        late_logs=status.late,
    )
