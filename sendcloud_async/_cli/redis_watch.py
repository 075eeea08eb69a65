"""``logs watch --accounts FILE --redis URL``: one of many workers sharing a watch through Redis.

Every worker runs the same command with the same accounts file. The accounts are
split by leases in Redis (``RedisWatchCoordinator``); each new log goes to the
stream ``PREFIX:NAME`` of its account, together with the account's watch state,
through the fence (see ``sendcloud_async/_redis_watch.py``). The status line
shows the accounts this worker holds. Ctrl-C and SIGTERM release the leases and
exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from yarl import URL

from .._aio import stop_task
from .._errors import InvalidInputError
from .._pool import AccountPool
from .._watchers import IntegrationFailing, IntegrationRecovered, NewLogs, WatchEvent
from .accounts import Account, open_accounts
from .clients import rate_limit
from .common import EXIT_OK, PROG, UsageError
from .context import Context
from .options import seconds

if TYPE_CHECKING:
    from .._auth import Auth
    from .._redis_watch import AccountWatch, Commit, LeaseEvent

__all__ = ["add_redis_options", "check_redis", "run_redis"]

DEFAULT_LEASE = 30.0
_SCHEMES = ("redis", "rediss", "unix")


def add_redis_options(parser: argparse.ArgumentParser) -> None:
    """``--redis URL [--stream PREFIX] [--lease S]`` in their own group."""
    group = parser.add_argument_group("many workers (the [redis] extra)")
    group.add_argument(
        "--redis",
        metavar="URL",
        help="share the accounts of --accounts with every worker using this Redis; new logs "
        "go to the stream PREFIX:NAME of each account (instead of --out-dir)",
    )
    group.add_argument(
        "--stream",
        metavar="PREFIX",
        help="the streams' name prefix with --redis (sendcloud-async:logs)",
    )
    group.add_argument(
        "--lease",
        type=seconds,
        metavar="S",
        help=f"seconds an account stays with a worker that stopped renewing ({DEFAULT_LEASE:g})",
    )


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
    try:
        url = URL(args.redis)
    except ValueError:
        url = None
    if url is None or url.scheme not in _SCHEMES:
        raise UsageError("--redis must be a redis://, rediss:// or unix:// URL")
    return True


def run_redis(args: argparse.Namespace, ctx: Context) -> int:
    """Load and check the accounts (exit 2 on a refusal), then work until stopped."""
    try:
        from .. import redis as _redis  # noqa: F401  (the extra is installed)
    except ImportError:
        raise UsageError(
            "--redis needs the redis package: pip install 'sendcloud-async[redis]'"
        ) from None
    path = Path(args.accounts)
    accounts = open_accounts(path, ctx.env, ctx.warn)
    events: IO[str] | None = None
    if args.events is not None:
        try:
            events = open(args.events, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"cannot write {args.events}: {exc.strerror}") from None
    try:
        asyncio.run(_work(args, ctx, accounts, events))
    except InvalidInputError as exc:
        raise UsageError(str(exc)) from None
    finally:
        ctx.progress.close()
        if events is not None:
            events.close()
    return EXIT_OK


class _Status:
    """The live line: what this worker holds, and the new logs it wrote."""

    def __init__(self, ctx: Context, total: int) -> None:
        self.ctx = ctx
        self.total = total
        self.new_logs = 0
        self.held: dict[str, int] = {}

    def text(self) -> str:
        names = sorted(self.held)
        shown = ", ".join(names[:5]) + (f", … (+{len(names) - 5})" if len(names) > 5 else "")
        return (
            f"holding {len(names)}/{self.total} accounts"
            + (f": {shown}" if names else "")
            + f" · {self.new_logs:,} new logs written"
        )

    def draw(self, *, force: bool = False) -> None:
        self.ctx.progress.show(self.text(), force=force)


async def _work(
    args: argparse.Namespace, ctx: Context, accounts: Sequence[Account], events: IO[str] | None
) -> None:
    from .._redis_watch import (
        DEFAULT_STREAM_PREFIX,
        RedisWatchCoordinator,
        RedisWatchStore,
        log_watcher_watch,
    )
    from ..redis import RedisState
    from .watch_events import ENCODER as _ENCODER
    from .watch_events import event_line as _event_line
    from .watch_events import event_record as _event_record

    status = _Status(ctx, len(accounts))

    def on_watch_event(event: WatchEvent) -> None:
        if isinstance(event, NewLogs):
            status.new_logs += len(event.items)
            status.draw()
        elif isinstance(event, IntegrationFailing | IntegrationRecovered):
            ctx.progress.message(_event_line(event, single=False))
            if events is not None:
                events.write(_ENCODER.encode(_event_record(event)).decode() + "\n")
                events.flush()

    def on_lease(event: LeaseEvent) -> None:
        if event.kind == "claimed":
            status.held[event.account] = event.token
        else:
            status.held.pop(event.account, None)
            if event.kind == "refused":
                ctx.progress.message(
                    f"{PROG}: account {event.account}: taken over by another worker "
                    f"(fencing token {event.token} refused); nothing was written"
                )
        status.draw()

    lease = DEFAULT_LEASE if args.lease is None else args.lease
    async with (
        RedisState.from_url(args.redis, retry_interval=min(5.0, lease / 4)) as state,
        RedisWatchStore.from_url(
            args.redis, stream_prefix=args.stream or DEFAULT_STREAM_PREFIX, lease=lease
        ) as store,
        contextlib.AsyncExitStack() as stack,
    ):
        watches: dict[str, AccountWatch] = {}
        by_url: dict[str, dict[str, Auth]] = {}
        scoped: dict[str, dict[str, int]] = {}
        for account in accounts:
            by_url.setdefault(account.base_url, {})[account.name] = account.auth()
            if account.integration_id is not None:
                scoped.setdefault(account.base_url, {})[account.name] = account.integration_id
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
            )
            for name in auths:
                watches[name] = watch

        async def dispatch(name: str, saved: bytes | None, commit: Commit) -> None:
            await watches[name](name, saved, commit)

        coordinator = RedisWatchCoordinator(store, list(watches), dispatch, on_event=on_lease)
        loop = asyncio.get_running_loop()
        if sys.platform != "win32":
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, coordinator.stop)
        status.draw(force=True)

        async def refresh() -> None:
            # Once a second: the line follows the holdings (claims come in bursts).
            shown = status.held.copy()
            while True:
                await asyncio.sleep(1.0)
                status.draw(force=status.held != shown)
                shown = status.held.copy()

        refresher = asyncio.create_task(refresh())
        try:
            await coordinator.run()
        finally:
            await stop_task(refresher)
    ctx.progress.message(
        f"{PROG}: stopped; leases released, {status.new_logs:,} new logs written by this worker"
    )
