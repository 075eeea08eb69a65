"""``fake serve``: a standalone FakeSendcloud with N accounts whose logs keep coming.

It is the Sendcloud side of a trial of the watch (``logs watch --accounts``, with
or without ``--redis``): a real HTTP server on 127.0.0.1 that accepts one key pair
(or OAuth2 client) per account, gives each account its own integration, and adds
``--rate`` new logs a second, round-robin over the integrations
(``FakeSendcloud.produce``). It prints the accounts file that points at it (TOML,
the format ``--accounts`` reads, ``base_url`` included) on stdout, or writes it
with ``--write-accounts FILE`` (mode 0600, replaced atomically once the server
listens, so another command can wait for the file to appear).

Every account of the fake sees the same data, as one Sendcloud user would, so each
account's table scopes it to its own integration (``integration = N``): every
produced log belongs to exactly one account. It runs until Ctrl-C or SIGTERM and
then exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from .command import Handlers
from .common import EXIT_FAILURE, EXIT_OK, PROG, UsageError
from .context import Context
from .destination import make_directory
from .options import count, positive
from .signals import run as run_stoppable

if TYPE_CHECKING:
    from ..testing import FakeSendcloud, LogProducer

__all__ = ["FAKE_SERVE", "accounts_toml"]

MAX_ACCOUNTS: Final = 1_000
MAX_RATE: Final = 10_000.0
MAX_INITIAL_LOGS: Final = 100_000
#: The newest logs the fake keeps by default (about 2 kB each).
DEFAULT_KEEP: Final = 100_000
#: How often the status line and the request journal are looked at.
_STATUS_PERIOD: Final = 1.0


@dataclass(frozen=True, slots=True)
class FakeAccount:
    """One account of the fake: its name, integration and credentials (test values)."""

    name: str
    integration: int
    key: str
    secret: str


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_RATE:
        raise argparse.ArgumentTypeError(
            f"the rate must be 0 to {MAX_RATE:,.0f} logs a second, got {text!r}"
        )
    return value


def _configure(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("what it serves")
    what.add_argument(
        "--accounts",
        type=positive,
        default=4,
        metavar="N",
        help=f"accounts, each with its own credentials and integration (4; at most "
        f"{MAX_ACCOUNTS:,})",
    )
    what.add_argument(
        "--rate",
        type=_rate,
        default=10.0,
        metavar="LOGS_PER_S",
        help="new logs a second, in all, spread evenly over the accounts (10; 0: none)",
    )
    what.add_argument(
        "--initial-logs",
        type=count,
        default=0,
        metavar="N",
        help="logs each account has before it starts (0), from 2023-03-01 on",
    )
    what.add_argument(
        "--seed",
        type=count,
        default=0,
        metavar="N",
        help="makes the data and the credentials the same on every run with the same seed (0)",
    )
    what.add_argument(
        "--auth",
        choices=("basic", "oauth2"),
        default="basic",
        help="the accounts' credentials: Basic key pairs (default) or OAuth2 clients",
    )
    what.add_argument(
        "--keep",
        type=positive,
        default=DEFAULT_KEEP,
        metavar="N",
        help=f"keep the newest N logs, dropping older ones ({DEFAULT_KEEP:,}, about 200 MB)",
    )
    where = parser.add_argument_group("where")
    where.add_argument(
        "--port",
        type=count,
        default=0,
        metavar="P",
        help="listen on 127.0.0.1:P (default: a free port)",
    )
    where.add_argument(
        "--write-accounts",
        metavar="FILE",
        help="write the accounts file to FILE (mode 0600) instead of printing it",
    )


def _check(args: argparse.Namespace) -> None:
    if args.accounts > MAX_ACCOUNTS:
        raise UsageError(f"--accounts must be 1 to {MAX_ACCOUNTS:,}, got {args.accounts:,}")
    if args.port > 65_535:
        raise UsageError(f"--port must be 0 to 65535, got {args.port}")
    if args.initial_logs > MAX_INITIAL_LOGS:
        raise UsageError(
            f"--initial-logs must be 0 to {MAX_INITIAL_LOGS:,} (per account), "
            f"got {args.initial_logs:,}"
        )
    if args.keep < args.accounts * args.initial_logs:
        raise UsageError(
            f"--keep {args.keep:,} would drop some of the "
            f"{args.accounts * args.initial_logs:,} initial logs; keep more"
        )
    if args.write_accounts == "-":
        raise UsageError("--write-accounts needs a file; without it the file goes to stdout")


def fake_accounts(count: int, seed: int, auth: str) -> list[FakeAccount]:
    """The accounts ``shop-1`` … ``shop-N``: integration ``n``, credentials from ``seed``."""
    accounts = []
    for n in range(1, count + 1):
        digest = hashlib.sha256(f"sendcloud-async fake {seed} {n}".encode()).hexdigest()[:24]
        name = f"shop-{n}"
        if auth == "oauth2":
            key, secret = f"{name}-client", f"{name}-client-secret-{digest}"
        else:
            key, secret = f"{name}-public-key", f"{name}-secret-{digest}"
        accounts.append(FakeAccount(name, n, key, secret))
    return accounts


def _toml(value: str) -> str:
    # A JSON string of printable ASCII is a TOML basic string.
    return json.dumps(value, ensure_ascii=True)


def accounts_toml(
    accounts: list[FakeAccount], *, base_url: str, token_url: str | None, header: str
) -> str:
    """The accounts file for ``accounts`` (``token_url``: OAuth2 clients, else key pairs)."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for account in accounts:
        lines += ["", f"[accounts.{account.name}]"]
        if token_url is None:
            lines += [f"public_key = {_toml(account.key)}", f"secret_key = {_toml(account.secret)}"]
        else:
            lines += [
                f"client_id = {_toml(account.key)}",
                f"client_secret = {_toml(account.secret)}",
                f"token_url = {_toml(token_url)}",
            ]
        lines += [f"base_url = {_toml(base_url)}", f"integration = {account.integration}"]
    return "\n".join(lines) + "\n"


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` atomically, readable by its owner only (0600)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if sys.platform != "win32":
            os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _run(args: argparse.Namespace, ctx: Context) -> int:
    target: Path | None = None
    if args.write_accounts is not None:
        target = Path(args.write_accounts)
        make_directory(target.parent, what=str(target))
        if target.is_dir():
            raise UsageError(f"--write-accounts {target} is a directory; name a file")
    accounts = fake_accounts(args.accounts, args.seed, args.auth)
    try:
        return run_stoppable(_serve(args, ctx, accounts, target))
    except KeyboardInterrupt:  # where signals cannot be handled by the loop (Windows)
        ctx.progress.finish()
        ctx.progress.log("info", "stopped", event="stopped")
        return EXIT_OK


class _Status:
    """The live line: the address, the logs produced and the requests served."""

    def __init__(self, ctx: Context, base_url: str, accounts: int) -> None:
        self.ctx = ctx
        self.base_url = base_url
        self.accounts = accounts
        self.requests = 0
        self.started = time.monotonic()

    def show(self, producer: LogProducer | None) -> None:
        """Make the numbers the status line."""
        elapsed = time.monotonic() - self.started
        produced = 0 if producer is None else producer.produced
        rate = produced / elapsed if elapsed > 0 else 0.0
        self.ctx.progress.show(
            f"serving {self.base_url} · {self.accounts} accounts · {produced:,} logs produced "
            f"({rate:,.1f}/s) · {self.requests:,} requests · {elapsed:,.0f} s",
            fields={
                "base_url": self.base_url,
                "accounts": self.accounts,
                "produced": produced,
                "requests": self.requests,
            },
            key=(produced, self.requests),
        )


async def _serve(
    args: argparse.Namespace, ctx: Context, accounts: list[FakeAccount], target: Path | None
) -> int:
    from ..testing import FakeSendcloud

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if sys.platform != "win32":
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    fake = FakeSendcloud(port=args.port, validate_spec=False)
    try:
        await fake.start()
    except OSError as exc:
        ctx.error(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}")
        return EXIT_FAILURE
    try:
        return await _serving(args, ctx, fake, accounts, target, stop)
    finally:
        await fake.close()


async def _serving(
    args: argparse.Namespace,
    ctx: Context,
    fake: FakeSendcloud,
    accounts: list[FakeAccount],
    target: Path | None,
    stop: asyncio.Event,
) -> int:
    from .._aio import sleep_until

    fake.seed(integrations=len(accounts), logs_per_integration=args.initial_logs, seed=args.seed)
    token_url: str | None = None
    for account in accounts:
        if args.auth == "oauth2":
            fake.add_oauth_client(account.key, account.secret)
            token_url = fake.token_url
        else:
            fake.add_account(account.key, account.secret)
    rate = f"{args.rate:g} new logs a second in all" if args.rate else "no new logs"
    summary = (
        f"FakeSendcloud at {fake.base_url}: {len(accounts)} accounts, {rate}; "
        "Ctrl-C or SIGTERM stops it"
    )
    header = (
        f"{summary}\nEach account sees its own integration's logs. Use this file with, e.g.:\n"
        f"{PROG} logs watch --accounts accounts.toml --redis redis://localhost:6379/0 "
        "--start all --interval 1"
    )
    text = accounts_toml(accounts, base_url=fake.base_url, token_url=token_url, header=header)
    if target is None:
        ctx.stdout.write(text)
        ctx.stdout.flush()
    else:
        try:
            _write_private(target, text)
        except OSError as exc:
            raise UsageError(
                f"cannot write the accounts file {target}: {exc.strerror or exc}"
            ) from None
        ctx.result(
            f"{summary}\nwrote the accounts file {target} ({len(accounts)} accounts); try:\n"
            f"$ {PROG} logs watch --accounts {shlex.quote(str(target))} "
            "--redis redis://localhost:6379/0 --start all --interval 1",
            event="serving",
            base_url=fake.base_url,
            accounts=len(accounts),
            accounts_file=str(target),
        )
    producer = fake.produce(args.rate, seed=args.seed, keep=args.keep) if args.rate else None
    status = _Status(ctx, fake.base_url, len(accounts))
    try:
        while not await sleep_until(stop, _STATUS_PERIOD):
            # The journal of requests would grow without end: count it and let it go.
            status.requests += len(fake.requests)
            fake.clear_requests()
            status.show(producer)
    finally:
        if producer is not None:
            await producer.stop()
    status.requests += len(fake.requests)
    ctx.progress.finish()
    if not ctx.quiet:  # on stderr: stdout may be the accounts file
        produced = 0 if producer is None else producer.produced
        elapsed = time.monotonic() - status.started
        ctx.progress.log(
            "info",
            f"stopped after {elapsed:,.0f} s: {produced:,} logs produced, "
            f"{status.requests:,} requests served",
            event="stopped",
            produced=produced,
            requests=status.requests,
            seconds=round(elapsed, 1),
        )
    return EXIT_OK


FAKE_SERVE = Handlers(
    configure=_configure,
    run=_run,
    check=_check,
)
