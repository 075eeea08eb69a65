"""``logs export --accounts FILE --out-dir DIR --redis URL``: one of many workers sharing an export.

Every worker runs the same command. The accounts are split by the Redis watch's
leases (``_redis._watch``: claim, renew, release, a fencing token per claim); each
worker first claims the accounts rendezvous hashing gives it (``_members``) and,
once those are done or held, helps with the others. An account is exported by
its own job (``many_accounts.account_job`` and ``export_account``, as without
``--redis``), always continuing from the checkpoint at the destination (a
takeover is a resume), and is marked done in Redis -- through the fenced commit,
as a state ``{"done": true, ...}`` -- only once its output is complete on disk.

Exactly once, whoever writes:

* the output is one writer's at a time: the job holds an exclusive lock on the
  output file from ``open()`` to ``close()`` (``FileSink``), and every page is
  committed file first, then the checkpoint (``_export``);
* before each write the job awaits its ``fence`` (``export_lease.LeaseFence``): the lease is
  renewed with its fencing token in Redis, and a lease that lapsed or was taken
  over (or whose time ran out here, or whose renewal came back too late) stops
  the job with nothing more written (``LeaseLostError``);
* a worker paused (SIGSTOP) past its lease keeps the lock while it sleeps, so the
  worker that takes its lease over cannot open the output: it lets the lease go
  and tries again a little later (``ExportInUseError``). Woken up, the paused
  worker finishes at most the write it was in the middle of (under the lock,
  file then checkpoint), finds its lease gone at the next fence, and closes the
  job, which releases the lock; the next holder continues from the checkpoint,
  which accounts for that last write. A killed worker's lock goes with its
  process, and its lease lapses ``--lease`` seconds later.

The run's keys live under ``NS:watch:{export:RUN:NAME}`` (the watch's layout,
``RUN`` from ``run_name``), so two export runs never mix; an account's done
state lives as long as the watch's states (``DEFAULT_STATE_TTL``). A done state
is believed only when the account's checkpoint at the destination says done
too: the same command run again after the files were removed exports them again.

Here: the options' check, the run's name, and the run's start. A worker's rounds
and its exports are ``export_rounds``; the done state and the fence,
``export_lease``; the run's record of finished accounts (``NS:watch:{export:RUN}:finished``),
``export_finished``; what a round claims and when it sweeps, ``export_plan``; what a
worker says, ``export_tally``.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Final

from .._defaults import DEFAULT_WATCH_LEASE, writes_parts
from .._errors import ExportInputError, MissingExtraError
from .accounts import Account, open_accounts
from .common import UsageError
from .context import Context
from .destination import make_directory
from .export_lease import without_restart
from .export_output import check_destinations, parts_destination
from .export_rounds import Worker, worker_job
from .many_accounts import account_pools
from .signals import run as run_stoppable

if TYPE_CHECKING:
    from .._export import LogExport

__all__ = ["check_workers", "export_with_workers", "run_name"]

_RUN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


# -- the options -------------------------------------------------------------------------------


def check_workers(args: argparse.Namespace) -> None:
    """``UsageError`` for ``--redis``, ``--lease`` or ``--run`` where they do not go.

    With ``--redis`` every account continues from its checkpoint: ``args.resume`` is set.
    """
    if args.redis is None:
        for option in ("lease", "run"):
            if getattr(args, option) is not None:
                raise UsageError(f"--{option} goes with --redis URL")
        return
    if args.accounts is None:
        raise UsageError(
            "--redis needs --accounts TOML and --out-dir DIR (every worker gets the same)"
        )
    if args.restart:
        raise UsageError(
            "--restart cannot be used with --redis: the workers continue each account from "
            "its checkpoint; to start over, export into another --out-dir"
        )
    if args.fake:
        raise UsageError(
            "--fake cannot be used with --redis: each worker would export its own fake"
        )
    if args.run is not None and not _RUN.fullmatch(args.run):
        raise UsageError(
            "--run must be 1 to 64 letters, digits, '.', '_' or '-' (starting with a letter "
            "or digit)"
        )
    from .redis_watch import check_redis_url  # here: a run without --redis does not load it

    check_redis_url(args.redis)
    args.resume = True  # a takeover continues from the checkpoint another worker left


def run_name(args: argparse.Namespace, accounts: list[Account]) -> str:
    """The export run the workers share: ``--run``, else a hash of what the run is.

    What it is: the accounts' names, the destination (a URL of ``--out`` or
    ``--out-dir`` as given, a directory by its absolute path) and the ``--format``
    given, so that every worker of the same command on the same destination agrees,
    from whatever working directory, and another export never mixes with it.
    """
    if args.run is not None:
        return str(args.run)
    digest = hashlib.blake2b(digest_size=8)
    for part in (
        *sorted(account.name for account in accounts),
        "",
        _destination(args),
        args.query.fmt or "",
    ):
        digest.update(part.encode() + b"\n")
    return digest.hexdigest()


def _destination(args: argparse.Namespace) -> str:
    """Where every account goes: a URL as it is, a directory by its absolute path."""
    out = parts_destination(args)
    if _is_url(out):
        return out
    return str(Path(out).absolute())


def _is_url(out: str) -> bool:
    """Whether ``--out``/``--out-dir`` is a URL (``writes_parts``' rule, whatever the format)."""
    return writes_parts(out, None)


# -- the command -------------------------------------------------------------------------------


def export_with_workers(args: argparse.Namespace, ctx: Context) -> int:
    """Check the accounts and every output (exit 2 on a refusal), then work until all are done.

    Redis refusing the URL's credentials or user ends the run with status 1 before
    anything is written (a database it does not have with status 2).
    """
    from .redis_watch import require_redis_extra, run_on_redis

    require_redis_extra()

    accounts = open_accounts(Path(args.accounts), ctx.env, ctx.warn)
    # A URL in --out-dir is a bucket of parts (as without --redis): nothing local to create.
    local = args.out_dir is not None and not _is_url(args.out_dir)
    out_dir = Path(args.out_dir) if local else None
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"cannot write into {out_dir}: it is not a directory")
    # A checkpoint of another export, a missing extra, a destination that cannot be: said
    # now, before anything is sent, with the advice that goes with --redis.
    parts: list[tuple[str, LogExport]] = []
    try:
        for account in accounts:
            label = f"account {account.name}: "
            job = worker_job(args, account)
            if job.parts:
                parts.append((label, job))
                try:
                    job.open()
                except (ExportInputError, MissingExtraError) as exc:
                    raise UsageError(f"{label}{exc}") from None
        run_stoppable(check_destinations(parts, resume=True, restart=False))
    except UsageError as exc:
        raise UsageError(without_restart(str(exc))) from None
    finally:
        for _, job in parts:
            job.close()
    run = run_name(args, accounts)
    return run_on_redis(_work(args, ctx, accounts, out_dir, run))


async def _work(
    args: argparse.Namespace,
    ctx: Context,
    accounts: list[Account],
    out_dir: Path | None,
    run: str,
) -> int:
    from .._redis._watch import RedisWatchStore
    from ..redis import RedisConnection

    lease = DEFAULT_WATCH_LEASE if args.lease is None else args.lease
    async with (
        RedisConnection.from_url(args.redis) as connection,
        RedisWatchStore(connection, stream_prefix=f"export:{run}", lease=lease) as store,
    ):
        await store.check()  # a URL Redis refuses stops here: nothing is written
        if out_dir is not None:
            make_directory(out_dir, what=f"into {out_dir}")
        async with account_pools(args) as pools, ctx.live():
            worker = Worker(args, ctx, store, accounts, run, pools)
            return await worker.run()
