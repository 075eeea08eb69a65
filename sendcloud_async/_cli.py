"""The ``sendcloud-async`` command: demo, exactly-once log export, integrations.

::

    sendcloud-async demo
    sendcloud-async logs export --out FILE [--format jsonl|csv] [--integration ID]
                                [--page-size N] [--resume] [--fake] [--quiet]
    sendcloud-async logs export --accounts accounts.toml --out-dir DIR [--concurrency N] ...
    sendcloud-async integrations list [--json]
    sendcloud-async integrations get ID [--json]

Credentials come from the environment (or the accounts file), never from the
command line, and are never printed. Exit status: 0 success, 1 a failure at
run time (the API refused, a 5xx after retries, a write failed, an account
failed), 2 bad usage or input (found before any request is sent), 130
interrupted (Ctrl-C; the checkpoint is saved).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import csv
import logging
import os
import re
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, NoReturn, TextIO

import aiohttp
import msgspec

from ._auth import Auth, BasicAuth
from ._client import DEFAULT_BASE_URL, SendcloudClient, normalize_base_url
from ._errors import InvalidInputError, SendcloudError
from ._export import FORMATS, ExportInputError, ExportStats, LogExport
from ._models import Integration
from ._ratelimit import RateLimits
from ._version import __version__

if TYPE_CHECKING:
    from .testing import FakeSendcloud

__all__ = ["main"]

PROG: Final = "sendcloud-async"

#: The data ``--fake`` serves: the same on every run, so ``--resume`` works there too.
FAKE_INTEGRATIONS: Final = 4
FAKE_LOGS_PER_INTEGRATION: Final = 5_000
FAKE_SEED: Final = 2024
#: What a checkpoint written against ``--fake`` names as its base URL.
FAKE_SOURCE: Final = f"fake:{FAKE_INTEGRATIONS}x{FAKE_LOGS_PER_INTEGRATION}:seed={FAKE_SEED}"

DEMO_INTEGRATIONS: Final = 4
DEMO_LOGS_PER_INTEGRATION: Final = 7_500
DEMO_SEED: Final = 7

DEFAULT_PAGE_SIZE: Final = 100
DEFAULT_CONCURRENCY: Final = 4
LINE_INTERVAL: Final = 2.0  # seconds between progress lines when stderr is not a terminal
TTY_INTERVAL: Final = 0.1

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

RESUME_HINT: Final = "interrupted; run again with --resume to continue"

ENV_PUBLIC_KEY: Final = "SENDCLOUD_PUBLIC_KEY"
ENV_SECRET_KEY: Final = "SENDCLOUD_SECRET_KEY"
ENV_CLIENT_ID: Final = "SENDCLOUD_CLIENT_ID"
ENV_CLIENT_SECRET: Final = "SENDCLOUD_CLIENT_SECRET"
ENV_BASE_URL: Final = "SENDCLOUD_BASE_URL"
ENV_TOKEN_URL: Final = "SENDCLOUD_TOKEN_URL"

_ACCOUNT_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_ACCOUNT_KEYS: Final = frozenset(
    {
        "public_key",
        "secret_key",
        "client_id",
        "client_secret",
        "token_url",
        "base_url",
        "integration",
    }
)

_sdk_logger: Final = logging.getLogger("sendcloud_async")
_account_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "sendcloud_async_cli_account", default=None
)


class UsageError(Exception):
    """Bad usage or input, found before any request: exit status 2."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# -- progress and messages ------------------------------------------------------------

ProgressMode = Literal["tty", "lines", "off"]


class Progress:
    """Progress on stderr: one updating line on a terminal, a line now and then otherwise.

    ``message()`` prints a line (a warning, an account's failure) without
    garbling the live line.
    """

    def __init__(
        self,
        stream: TextIO,
        mode: ProgressMode,
        *,
        total: int | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.mode = mode
        self.total = total
        self.interval = (
            interval if interval is not None else TTY_INTERVAL if mode == "tty" else LINE_INTERVAL
        )
        self._clock = clock
        self._last = clock()
        self._line = ""

    @staticmethod
    def mode_for(stream: TextIO, *, quiet: bool) -> ProgressMode:
        """``off`` when quiet, ``tty`` on a terminal, else ``lines``."""
        if quiet:
            return "off"
        try:
            return "tty" if stream.isatty() else "lines"
        except (AttributeError, ValueError):
            return "lines"

    def render(self, records: int, pages: int, rate: float, elapsed: float, extra: str = "") -> str:
        """The progress text (without control characters)."""
        if self.mode == "tty":
            parts = []
            if self.total:
                width = 24
                fraction = min(1.0, records / self.total)
                filled = int(fraction * width)
                bar = "█" * filled + "░" * (width - filled)
                parts.append(f"[{bar}] {fraction:4.0%}  {records:,}/{self.total:,} records")
            else:
                parts.append(f"{records:,} records")
            parts += [f"{pages:,} pages", f"{rate:,.0f} rec/s", f"{elapsed:.1f} s"]
            text = " · ".join(parts)
        else:
            text = (
                f"exported {records:,} records in {pages:,} pages "
                f"({rate:,.0f} rec/s, {elapsed:.1f} s)"
            )
        return f"{text}{extra}"

    def update(
        self,
        records: int,
        pages: int,
        rate: float,
        elapsed: float,
        *,
        extra: str = "",
        force: bool = False,
    ) -> None:
        """Show the numbers, at most once per interval unless ``force``."""
        if self.mode == "off":
            return
        now = self._clock()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        text = self.render(records, pages, rate, elapsed, extra)
        if self.mode == "tty":
            self._line = text
            self.stream.write(f"\r{text}\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """Print one line above the live progress line (shown even when quiet)."""
        if self.mode == "tty" and self._line:
            self.stream.write(f"\r\x1b[K{text}\n{self._line}\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the live line (on a terminal)."""
        if self.mode == "tty" and self._line:
            self.stream.write("\n")
            self.stream.flush()
            self._line = ""

    def for_export(self) -> Callable[[ExportStats], None]:
        """A progress callback for one ``LogExport``."""

        def report(stats: ExportStats) -> None:
            # The last page is always drawn on a terminal; elsewhere the summary says it.
            final = stats.done and self.mode == "tty"
            self.update(stats.records, stats.pages, stats.rate, stats.elapsed, force=final)

        return report


class _ProgressLogHandler(logging.Handler):
    """SDK warnings (retries) as one line each, above the progress line."""

    def __init__(self, progress: Progress) -> None:
        super().__init__(logging.WARNING)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        try:
            account = _account_var.get()
            where = f"account {account}: " if account else ""
            self.progress.message(f"{PROG}: warning: {where}{_one_line(record.getMessage())}")
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


# -- credentials ------------------------------------------------------------------------


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value if value else None


def _pair(
    env: Mapping[str, str], first: str, second: str
) -> tuple[str, str] | Literal["none", "partial"]:
    a, b = _env(env, first), _env(env, second)
    if a is not None and b is not None:
        return a, b
    return "none" if a is None and b is None else "partial"


def auth_from_env(env: Mapping[str, str]) -> tuple[Auth, str]:
    """The credentials and base URL the environment names; ``UsageError`` if unusable."""
    basic = _pair(env, ENV_PUBLIC_KEY, ENV_SECRET_KEY)
    oauth = _pair(env, ENV_CLIENT_ID, ENV_CLIENT_SECRET)
    if basic != "none" and oauth != "none":
        raise UsageError(
            f"both Basic ({ENV_PUBLIC_KEY}/{ENV_SECRET_KEY}) and OAuth2 "
            f"({ENV_CLIENT_ID}/{ENV_CLIENT_SECRET}) credentials are set; unset one pair"
        )
    for state, names in (
        (basic, (ENV_PUBLIC_KEY, ENV_SECRET_KEY)),
        (oauth, (ENV_CLIENT_ID, ENV_CLIENT_SECRET)),
    ):
        if state == "partial":
            missing = names[1] if _env(env, names[0]) else names[0]
            present = names[0] if missing == names[1] else names[1]
            raise UsageError(f"{missing} is not set (it goes with {present})")
    base_url = _base_url(_env(env, ENV_BASE_URL), ENV_BASE_URL)
    try:
        if isinstance(basic, tuple):
            return BasicAuth(*basic), base_url
        if isinstance(oauth, tuple):
            return _oauth2(oauth[0], oauth[1], _env(env, ENV_TOKEN_URL)), base_url
    except InvalidInputError as exc:
        raise UsageError(f"unusable credentials in the environment: {exc}") from None
    raise UsageError(
        f"no credentials: set {ENV_PUBLIC_KEY} and {ENV_SECRET_KEY} (Basic) or "
        f"{ENV_CLIENT_ID} and {ENV_CLIENT_SECRET} (OAuth2), or use --fake"
    )


def _oauth2(client_id: str, client_secret: str, token_url: str | None) -> Auth:
    from ._oauth2 import OAuth2ClientCredentials

    if token_url is None:
        return OAuth2ClientCredentials(client_id, client_secret)
    return OAuth2ClientCredentials(client_id, client_secret, token_url=token_url)


def _base_url(value: str | None, name: str) -> str:
    if value is None:
        return DEFAULT_BASE_URL
    try:
        return str(normalize_base_url(value, name=name))
    except InvalidInputError as exc:
        raise UsageError(str(exc)) from None


# -- the accounts file ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Account:
    """One ``[accounts.NAME]`` table of an accounts file (its secrets never show in a repr)."""

    name: str
    base_url: str
    integration_id: int | None
    basic: tuple[str, str] | None = field(default=None, repr=False)
    oauth2: tuple[str, str, str | None] | None = field(default=None, repr=False)

    def auth(self, *, token_url: str | None = None) -> Auth:
        """Fresh credentials for this account (``token_url`` overrides the file's)."""
        if self.basic is not None:
            return BasicAuth(*self.basic)
        assert self.oauth2 is not None
        client_id, client_secret, own_token_url = self.oauth2
        return _oauth2(client_id, client_secret, token_url or own_token_url)


def load_accounts(path: Path, env: Mapping[str, str]) -> list[Account]:
    """Read and check an accounts file; ``UsageError`` with a one-line reason if unusable."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the accounts file {path}: {exc.strerror or exc}") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"the accounts file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"the accounts file {path} is not valid TOML: {exc}") from None
    extra = sorted(set(doc) - {"accounts"})
    if extra:
        raise UsageError(
            f"the accounts file {path} has unknown top-level keys: {', '.join(extra)} "
            "(expected only [accounts.NAME] tables)"
        )
    tables = doc.get("accounts")
    if not isinstance(tables, dict) or not tables:
        raise UsageError(f"the accounts file {path} has no [accounts.NAME] tables")
    default_base_url = _env(env, ENV_BASE_URL)
    accounts: list[Account] = []
    seen: dict[str, str] = {}
    for name, table in tables.items():
        where = f"{path}: account {name!r}"
        if not _ACCOUNT_NAME.fullmatch(name):
            raise UsageError(
                f"{where}: a name may hold only letters, digits, '.', '_' and '-' "
                "(it names the output file)"
            )
        if name.lower() in seen:
            raise UsageError(f"{where}: the name is used twice (also as {seen[name.lower()]!r})")
        seen[name.lower()] = name
        accounts.append(_account(name, table, where, default_base_url))
    return accounts


def _account(name: str, table: object, where: str, default_base_url: str | None) -> Account:
    if not isinstance(table, dict):
        raise UsageError(f"{where}: must be a table ([accounts.{name}])")
    unknown = sorted(set(table) - _ACCOUNT_KEYS)
    if unknown:
        raise UsageError(
            f"{where}: unknown keys {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(_ACCOUNT_KEYS))})"
        )
    for key, value in table.items():
        if key != "integration" and (not isinstance(value, str) or not value):
            raise UsageError(f"{where}: {key} must be a non-empty string")
    has_basic = "public_key" in table or "secret_key" in table
    has_oauth = "client_id" in table or "client_secret" in table
    if has_basic and has_oauth:
        raise UsageError(
            f"{where}: give public_key/secret_key or client_id/client_secret, not both"
        )
    if not has_basic and not has_oauth:
        raise UsageError(
            f"{where}: no credentials (public_key/secret_key or client_id/client_secret)"
        )
    pair = ("public_key", "secret_key") if has_basic else ("client_id", "client_secret")
    for key in pair:
        if key not in table:
            other = pair[1] if key == pair[0] else pair[0]
            raise UsageError(f"{where}: {key} is missing (it goes with {other})")
    if has_basic and "token_url" in table:
        raise UsageError(f"{where}: token_url only goes with client_id/client_secret")
    integration = table.get("integration")
    if integration is not None and (
        isinstance(integration, bool) or not isinstance(integration, int) or integration < 1
    ):
        raise UsageError(f"{where}: integration must be an integer id of 1 or more")
    base_url = _base_url(table.get("base_url", default_base_url), f"{where}: base_url")
    account = Account(
        name=name,
        base_url=base_url,
        integration_id=integration,
        basic=(table["public_key"], table["secret_key"]) if has_basic else None,
        oauth2=(table["client_id"], table["client_secret"], table.get("token_url"))
        if has_oauth
        else None,
    )
    try:
        account.auth()
    except InvalidInputError as exc:
        raise UsageError(f"{where}: {exc}") from None
    return account


# -- shared helpers ---------------------------------------------------------------------------


@asynccontextmanager
async def _maybe_fake(
    enabled: bool, *, seed: tuple[int, int, int] | None = None
) -> AsyncIterator[FakeSendcloud | None]:
    """A started, seeded FakeSendcloud when ``enabled``, else ``None``."""
    if not enabled:
        yield None
        return
    from .testing import FakeSendcloud

    integrations, per_integration, seed_value = seed or (
        FAKE_INTEGRATIONS,
        FAKE_LOGS_PER_INTEGRATION,
        FAKE_SEED,
    )
    async with FakeSendcloud() as fake:
        fake.seed(integrations=integrations, logs_per_integration=per_integration, seed=seed_value)
        yield fake


@asynccontextmanager
async def _single_client(
    args: argparse.Namespace, auth: Auth | None, base_url: str
) -> AsyncIterator[SendcloudClient]:
    """The client of a one-account command: against the embedded fake with ``--fake``."""
    async with _maybe_fake(args.fake) as fake:
        if fake is not None:
            auth, base_url = fake.basic_auth, fake.base_url
        assert auth is not None
        async with SendcloudClient(
            auth=auth,
            base_url=base_url,
            timeout=args.timeout,
            max_retries=args.max_retries,
            rate_limit=_rate_limit(args),
        ) as client:
            yield client


def _extension(fmt: str) -> str:
    return "csv" if fmt == "csv" else "jsonl"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{n:,} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _summary(stats: ExportStats) -> str:
    head = ""
    if stats.resumed:
        previous = stats.records - stats.run_records
        head = f"resumed after {previous:,} records"
        if stats.discarded_bytes:
            head += f" (discarded {stats.discarded_bytes:,} bytes of an unfinished page)"
        head += "; "
    return (
        f"{head}exported {stats.run_records:,} records in {stats.run_pages:,} pages "
        f"({stats.rate:,.0f} rec/s, {stats.elapsed:.2f} s); {stats.path} holds "
        f"{stats.records:,} records ({_size(stats.bytes)})"
    )


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _printable(text: str) -> str:
    """``text`` without control characters (a shop name must not drive the terminal)."""
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    rows = [[_printable(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [list(headers), *rows]
    ]
    return "\n".join(lines)


def integrations_table(items: Sequence[Integration]) -> str:
    """The ``integrations list`` table (times in UTC)."""
    headers = (
        "ID",
        "SHOP NAME",
        "TYPE",
        "FEEDBACK",
        "WEBHOOK",
        "SERVICE POINTS",
        "LAST FETCHED (UTC)",
        "FAILING SINCE (UTC)",
    )
    rows = [
        (
            str(i.id),
            i.shop_name or "-",
            i.type or "-",
            i.feedback_type or "-",
            "on" if i.webhook_active else "off",
            ", ".join(i.service_point_carriers) if i.service_point_enabled else "off",
            _when(i.last_fetched_at),
            _when(i.started_failing_at),
        )
        for i in items
    ]
    return _table(headers, rows)


def _integration_detail(item: Integration) -> str:
    rows = []
    for name in Integration.__struct_fields__:
        value = getattr(item, name)
        if isinstance(value, datetime):
            text = value.isoformat()
        elif isinstance(value, list):
            text = ", ".join(str(v) for v in value) or "-"
        elif isinstance(value, bool):
            text = "yes" if value else "no"
        else:
            text = "-" if value is None else str(value)
        rows.append((name, text))
    return _table(("FIELD", "VALUE"), rows)


def _json(value: object) -> str:
    return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()


# -- commands -------------------------------------------------------------------------------------


class _Context:
    """What every command needs: the streams, the environment and the progress line."""

    def __init__(self, env: Mapping[str, str], stdout: TextIO, stderr: TextIO, quiet: bool) -> None:
        self.env = env
        self.stdout = stdout
        self.stderr = stderr
        self.quiet = quiet
        self.progress = Progress(stderr, Progress.mode_for(stderr, quiet=quiet))

    def say(self, text: str = "") -> None:
        """A result line on stdout (not when quiet)."""
        if not self.quiet:
            self.progress.close()
            self.stdout.write(text + "\n")
            self.stdout.flush()

    def error(self, text: str) -> None:
        """A one-line error on stderr (always)."""
        self.progress.close()
        self.progress.message(f"{PROG}: error: {_one_line(text)}")


def _open_job(job: LogExport) -> LogExport:
    try:
        job.open()
    except ExportInputError as exc:
        raise UsageError(str(exc)) from None
    return job


def _cmd_logs_export(args: argparse.Namespace, ctx: _Context) -> int:
    """Everything is checked (and the output locked) before the event loop starts."""
    if args.accounts is not None:
        return _export_accounts(args, ctx)
    auth: Auth | None = None
    base_url = FAKE_SOURCE
    if not args.fake:
        auth, base_url = auth_from_env(ctx.env)
    try:
        job = LogExport(
            Path(args.out),
            base_url=base_url,
            fmt=args.format,
            integration_id=args.integration,
            page_size=args.page_size,
            resume=args.resume,
        )
    except ExportInputError as exc:
        raise UsageError(str(exc)) from None
    with _open_job(job):
        if job.already_complete:
            ctx.say(
                f"already complete: {job.path} holds the whole export (see {job.checkpoint_path})"
            )
            return EXIT_OK
        return asyncio.run(_export_one(args, ctx, job, auth, base_url))


async def _export_one(
    args: argparse.Namespace, ctx: _Context, job: LogExport, auth: Auth | None, base_url: str
) -> int:
    async with _single_client(args, auth, base_url) as client:
        try:
            stats = await job.run(client, progress=ctx.progress.for_export())
        except (SendcloudError, OSError) as exc:
            saved = job.saved_records
            hint = f"; {saved:,} records are saved, --resume continues" if saved else ""
            ctx.error(f"{exc}{hint}")
            return EXIT_FAILURE
    ctx.say(_summary(stats))
    return EXIT_OK


@dataclass(slots=True)
class _AccountRun:
    account: Account
    job: LogExport
    stats: ExportStats | None = None
    error: str | None = None
    finished: bool = False


def _export_accounts(args: argparse.Namespace, ctx: _Context) -> int:
    if args.out_dir is None:
        raise UsageError("--accounts needs --out-dir DIR (each account gets DIR/NAME.jsonl)")
    accounts = load_accounts(Path(args.accounts), ctx.env)
    out_dir = Path(args.out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create the output directory {out_dir}: {exc.strerror or exc}"
        ) from None
    runs: list[_AccountRun] = []
    try:
        for account in accounts:
            job = LogExport(
                out_dir / f"{account.name}.{_extension(args.format)}",
                base_url=FAKE_SOURCE if args.fake else account.base_url,
                fmt=args.format,
                integration_id=account.integration_id,
                page_size=args.page_size,
                resume=args.resume,
            )
            try:
                job.open()
            except ExportInputError as exc:
                raise UsageError(f"account {account.name}: {exc}") from None
            runs.append(_AccountRun(account, job))
        return asyncio.run(_run_accounts(args, ctx, runs))
    finally:
        for run in runs:
            run.job.close()


async def _run_accounts(args: argparse.Namespace, ctx: _Context, runs: list[_AccountRun]) -> int:
    started = time.monotonic()
    progress = ctx.progress
    latest: dict[str, ExportStats] = {}

    def show(force: bool = False) -> None:
        records = sum(s.records for s in latest.values())
        pages = sum(s.pages for s in latest.values())
        run_records = sum(s.run_records for s in latest.values())
        elapsed = time.monotonic() - started
        finished = sum(1 for r in runs if r.finished)
        failed = sum(1 for r in runs if r.error is not None)
        extra = f" · accounts {finished}/{len(runs)} finished" + (
            f", {failed} failed" if failed else ""
        )
        rate = run_records / elapsed if elapsed > 0 else 0.0
        progress.update(records, pages, rate, elapsed, extra=extra, force=force)

    semaphore = asyncio.Semaphore(args.concurrency)
    connector = aiohttp.TCPConnector(limit=max(10, 2 * args.concurrency), limit_per_host=0)
    async with (
        _maybe_fake(args.fake) as fake,
        aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as session,
    ):

        async def one(run: _AccountRun) -> None:
            name = run.account.name
            _account_var.set(name)
            if run.job.already_complete:
                run.finished = True
                return
            async with semaphore:
                try:
                    if fake is not None:
                        auth, url = run.account.auth(token_url=fake.token_url), fake.base_url
                    else:
                        auth, url = run.account.auth(), run.account.base_url
                    async with SendcloudClient(
                        auth=auth,
                        base_url=url,
                        timeout=args.timeout,
                        max_retries=args.max_retries,
                        session=session,
                        rate_limit=_rate_limit(args),
                    ) as client:

                        def report(stats: ExportStats) -> None:
                            latest[name] = stats
                            show()

                        run.stats = await run.job.run(client, progress=report)
                        latest[name] = run.stats
                except (SendcloudError, OSError) as exc:
                    run.error = _one_line(exc)
                    progress.message(f"{PROG}: account {name}: failed: {run.error}")
                except Exception as exc:  # a bug must not take the other accounts down
                    run.error = _one_line(f"unexpected {type(exc).__name__}: {exc}")
                    progress.message(f"{PROG}: account {name}: failed: {run.error}")
                finally:
                    run.finished = True
                    show(force=True)

        await asyncio.gather(*(one(run) for run in runs))
    progress.close()
    failed = [r for r in runs if r.error is not None]
    if not ctx.quiet:
        rows = []
        for run in runs:
            if run.error is not None:
                status, records, note = "failed", "-", run.error
            elif run.stats is None:
                status, records, note = "complete", "-", "already complete (checkpoint)"
            else:
                status = "ok"
                records = f"{run.stats.records:,}"
                note = f"+{run.stats.run_records:,} this run" if run.stats.resumed else ""
            rows.append((run.account.name, status, records, str(run.job.path), note))
        ctx.say(_table(("ACCOUNT", "STATUS", "RECORDS", "FILE", "NOTE"), rows))
        total = sum(r.stats.run_records for r in runs if r.stats is not None)
        ok = len(runs) - len(failed)
        ctx.say(
            f"exported {total:,} records for {ok} of {len(runs)} accounts "
            f"in {time.monotonic() - started:.2f} s"
            + (f"; {len(failed)} failed (run again with --resume to retry them)" if failed else "")
        )
    return EXIT_FAILURE if failed else EXIT_OK


def _rate_limit(args: argparse.Namespace) -> RateLimits | None:
    """Sendcloud's published per-account limits, unless ``--no-rate-limit``."""
    return None if getattr(args, "no_rate_limit", False) else RateLimits()


def _cmd_integrations(args: argparse.Namespace, ctx: _Context) -> int:
    if args.action == "get" and args.id < 1:
        raise UsageError(f"an integration id is 1 or more, got {args.id}")
    auth: Auth | None = None
    base_url = ""
    if not args.fake:
        auth, base_url = auth_from_env(ctx.env)
    return asyncio.run(_integrations(args, ctx, auth, base_url))


async def _integrations(
    args: argparse.Namespace, ctx: _Context, auth: Auth | None, base_url: str
) -> int:
    async with _single_client(args, auth, base_url) as client:
        try:
            if args.action == "list":
                items = await client.integrations.list()
                text = _json(items) if args.json else integrations_table(items)
            else:
                item = await client.integrations.get(args.id)
                text = _json(item) if args.json else _integration_detail(item)
        except InvalidInputError as exc:
            raise UsageError(str(exc)) from None
        except SendcloudError as exc:
            ctx.error(str(exc))
            return EXIT_FAILURE
    ctx.stdout.write(text + "\n")
    ctx.stdout.flush()
    return EXIT_OK


class _Ids(msgspec.Struct):
    id: int | None = None
    integration_id: int | None = None
    exception_type: str | None = None


def _read_back(path: Path, fmt: str) -> list[_Ids]:
    data = path.read_bytes()
    if fmt == "jsonl":
        return msgspec.json.Decoder(_Ids).decode_lines(data)
    rows = csv.DictReader(data.decode().splitlines(keepends=True))
    return [
        _Ids(
            id=int(r["id"]) if r["id"] else None,
            integration_id=int(r["integration_id"]) if r["integration_id"] else None,
            exception_type=r["exception_type"] or None,
        )
        for r in rows
    ]


def _cmd_demo(args: argparse.Namespace, ctx: _Context) -> int:
    began = time.monotonic()
    fmt: str = args.format
    if args.out is not None:
        out = Path(args.out)
    else:
        out = Path(tempfile.mkdtemp(prefix="sendcloud-demo-")) / f"logs.{_extension(fmt)}"
    with _open_job(LogExport(out, base_url="demo", fmt=fmt, page_size=DEFAULT_PAGE_SIZE)) as job:
        stats, expected = asyncio.run(_demo(ctx, job))
    ctx.say(_summary(stats))
    logs = _read_back(out, fmt)
    ids = [log.id for log in logs]
    if ids != expected:
        ctx.error(
            f"verification failed: the file holds {len(ids):,} logs "
            f"({len(set(ids)):,} distinct ids), the server has {len(expected):,}"
        )
        return EXIT_FAILURE
    ctx.say(
        f"verified: {len(ids):,} logs, {len(set(ids)):,} distinct ids, "
        "the same ids in the same order as on the server (exactly once)"
    )
    per_integration = sorted(Counter(log.integration_id or 0 for log in logs).items())
    ctx.say("per integration: " + " · ".join(f"#{k} {v:,}" for k, v in per_integration))
    kinds = Counter(log.exception_type or "(none)" for log in logs).most_common(3)
    ctx.say("top exception types: " + " · ".join(f"{k} {v:,}" for k, v in kinds))
    ctx.say(f"checkpoint: {job.checkpoint_path} (kill an export any time; --resume continues it)")
    ctx.say(f"demo finished in {time.monotonic() - began:.2f} s")
    return EXIT_OK


async def _demo(ctx: _Context, job: LogExport) -> tuple[ExportStats, list[int]]:
    seed = (DEMO_INTEGRATIONS, DEMO_LOGS_PER_INTEGRATION, DEMO_SEED)
    async with _maybe_fake(True, seed=seed) as fake:
        assert fake is not None
        expected: list[int] = [record["id"] for record in fake.logs]
        ctx.say(f"FakeSendcloud is serving on {fake.base_url} (loopback; no credentials needed)")
        ctx.say(
            f"seeded {len(fake.integrations)} integrations with {len(expected):,} exception logs"
        )
        ctx.say()
        async with SendcloudClient(
            auth=fake.basic_auth, base_url=fake.base_url, rate_limit=RateLimits()
        ) as client:
            integrations = await client.integrations.list()
            ctx.say(f"$ {PROG} integrations list")
            ctx.say(integrations_table(integrations))
            ctx.say()
            ctx.say(f"$ {PROG} logs export --out {job.path} --page-size {DEFAULT_PAGE_SIZE}")
            ctx.progress.total = len(expected)
            stats = await job.run(client, progress=ctx.progress.for_export())
    return stats, expected


# -- argument parsing -----------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        head, sep, rest = message.partition("unrecognized arguments: ")
        if sep:
            # Name the stray options, never echo their values (one could be a secret).
            shown = (a.split("=", 1)[0] if a.startswith("-") else "…" for a in rest.split())
            message = f"{head}{sep}{' '.join(shown)}"
        raise UsageError(f"{_one_line(message)} (see {self.prog} --help)")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _page_size(text: str) -> int:
    value = _positive(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"must be between 1 and 100, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _retries(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


_ENV_HELP: Final = (
    "credentials come from the environment: SENDCLOUD_PUBLIC_KEY and SENDCLOUD_SECRET_KEY "
    "(Basic) or SENDCLOUD_CLIENT_ID and SENDCLOUD_CLIENT_SECRET (OAuth2, with "
    "SENDCLOUD_TOKEN_URL to override the token endpoint); SENDCLOUD_BASE_URL overrides the "
    "API address. Exit status: 0 ok, 1 failed at run time, 2 bad usage or input, "
    "130 interrupted."
)


def build_parser() -> argparse.ArgumentParser:
    """The ``sendcloud-async`` argument parser."""
    parser = _Parser(
        prog=PROG,
        description="Sendcloud Integrations API v3 from the command line.",
        epilog=_ENV_HELP,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    network = _Parser(add_help=False)
    network.add_argument(
        "--fake",
        action="store_true",
        help="use an embedded FakeSendcloud (the same seeded data every run) instead of Sendcloud",
    )
    network.add_argument(
        "--timeout", type=_seconds, default=30.0, metavar="S", help="seconds per request (30)"
    )
    network.add_argument(
        "--max-retries",
        type=_retries,
        default=3,
        metavar="N",
        help="retries of a failed request (3; 0 disables)",
    )
    network.add_argument("--quiet", "-q", action="store_true", help="no progress or summary")
    network.add_argument(
        "--no-rate-limit",
        action="store_true",
        help="do not hold requests to Sendcloud's per-account limits (1,000 GET and 100 "
        "unsafe requests a minute, 15 unsafe at once); a 429 is then only retried",
    )

    demo = commands.add_parser(
        "demo",
        help="export the logs of an embedded fake Sendcloud (no credentials, no network)",
        description="Start an embedded FakeSendcloud, seed it, list its integrations and "
        "export its exception logs with the real export path.",
    )
    demo.add_argument("--out", metavar="FILE", help="where to write (default: a new temp dir)")
    demo.add_argument("--format", choices=FORMATS, default="jsonl")
    demo.add_argument("--quiet", "-q", action="store_true", help=argparse.SUPPRESS)
    demo.set_defaults(handler=_cmd_demo, interrupt_hint="interrupted")

    logs = commands.add_parser("logs", help="integration exception logs")
    logs_commands = logs.add_subparsers(dest="logs_command", metavar="ACTION", required=True)
    export = logs_commands.add_parser(
        "export",
        parents=[network],
        help="export exception logs to a file, exactly once, resumable",
        description="Export exception logs to JSON Lines or CSV. After every page the file is "
        "fsync-ed and a checkpoint beside it (FILE.checkpoint.json) is replaced atomically; "
        "--resume continues after the last complete page, so every log is written exactly once "
        "even if the run was killed.",
        epilog=_ENV_HELP,
    )
    target = export.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", metavar="FILE", help="the output file")
    target.add_argument(
        "--accounts",
        metavar="TOML",
        help="export every account of this file, each into DIR/NAME.jsonl (needs --out-dir)",
    )
    export.add_argument("--out-dir", metavar="DIR", help="the output directory with --accounts")
    export.add_argument("--format", choices=FORMATS, default="jsonl", help="jsonl (default) or csv")
    export.add_argument("--integration", type=_positive, metavar="ID", help="only this integration")
    export.add_argument(
        "--page-size",
        type=_page_size,
        default=DEFAULT_PAGE_SIZE,
        metavar="N",
        help=f"logs per request, 1..100 ({DEFAULT_PAGE_SIZE})",
    )
    export.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    export.add_argument(
        "--concurrency",
        type=_positive,
        default=None,
        metavar="N",
        help=f"accounts exported at once with --accounts ({DEFAULT_CONCURRENCY})",
    )
    export.set_defaults(handler=_cmd_logs_export, interrupt_hint=RESUME_HINT)

    integrations = commands.add_parser("integrations", help="list or show integrations")
    integration_commands = integrations.add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    listing = integration_commands.add_parser(
        "list", parents=[network], help="every integration, as a table", epilog=_ENV_HELP
    )
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(handler=_cmd_integrations, interrupt_hint="interrupted")
    get = integration_commands.add_parser(
        "get", parents=[network], help="one integration", epilog=_ENV_HELP
    )
    get.add_argument("id", type=int, metavar="ID")
    get.add_argument("--json", action="store_true", help="JSON instead of a table")
    get.set_defaults(handler=_cmd_integrations, interrupt_hint="interrupted")
    return parser


def _check_combinations(args: argparse.Namespace) -> None:
    if getattr(args, "logs_command", None) != "export":
        return
    if args.accounts is None:
        if args.out_dir is not None:
            raise UsageError("--out-dir goes with --accounts; for one account use --out FILE")
        if args.concurrency is not None:
            raise UsageError("--concurrency goes with --accounts")
    else:
        if args.integration is not None:
            raise UsageError(
                "--integration cannot be used with --accounts; set integration = ID in the "
                "account's table"
            )
    if args.concurrency is None:
        args.concurrency = DEFAULT_CONCURRENCY


# -- entry point ---------------------------------------------------------------------------------


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line; returns the exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        err.write(f"{PROG}: error: {exc}\n")
        err.flush()
        return EXIT_USAGE
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if getattr(args, "handler", None) is None:
        parser.print_help(err)
        return EXIT_USAGE
    ctx = _Context(
        os.environ if env is None else env, out, err, bool(getattr(args, "quiet", False))
    )
    handler = _ProgressLogHandler(ctx.progress)
    if ctx.quiet:
        handler.setLevel(logging.ERROR)
    _sdk_logger.addHandler(handler)
    propagate = _sdk_logger.propagate
    _sdk_logger.propagate = False
    try:
        _check_combinations(args)
        status: int = args.handler(args, ctx)
        return status
    except UsageError as exc:
        ctx.error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        ctx.progress.close()
        ctx.progress.message(str(args.interrupt_hint))
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): not an error of ours.
        with suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return EXIT_OK
    except Exception as exc:  # one line, never a traceback (it could show a credential)
        ctx.error(f"unexpected {type(exc).__name__}: {exc}")
        return EXIT_FAILURE
    finally:
        _sdk_logger.removeHandler(handler)
        _sdk_logger.propagate = propagate
