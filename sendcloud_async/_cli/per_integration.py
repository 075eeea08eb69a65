"""``logs export --per-integration [--concurrency N]``: one walk per integration, side by side.

The options, their checks and the job they choose; the engine is ``_export_walks``,
imported when a job is made (``--help`` shows the options without it).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .._defaults import DEFAULT_WALKS
from .common import DEFAULT_CONCURRENCY, UsageError
from .formats import STDOUT

if TYPE_CHECKING:
    from .._export import ExportStats, LogExport
    from .accounts import Account
    from .resume import Chosen

__all__ = [
    "check_per_integration",
    "new_job",
    "parts_job",
    "per_integration_options",
    "walks_note",
]


def per_integration_options(group: argparse._ArgumentGroup) -> None:
    """Add ``--per-integration`` (``--concurrency`` is shared with ``--accounts``)."""
    group.add_argument(
        "--per-integration",
        action="store_true",
        help="walk each integration's logs (GET /integrations/{id}/logs) side by side, "
        f"--concurrency at once ({DEFAULT_WALKS}), all within the account's rate limit, "
        "into the one file; pages of different integrations interleave. It cannot export logs "
        "of deleted integrations: the account-wide listing stays the default",
    )


def check_per_integration(args: argparse.Namespace) -> None:
    """Refuse what does not combine; set ``args.walks`` (integrations walked at once)."""
    args.walks = None
    if not args.per_integration:
        return
    if args.out == STDOUT:
        raise UsageError(
            "--per-integration needs an output file (its checkpoint records every walk); "
            "standard output (--out -) has none"
        )
    if args.integration is not None:
        raise UsageError(
            "--per-integration walks every integration; for one integration use --integration alone"
        )
    # --concurrency counts walks here; with --accounts the accounts go DEFAULT_CONCURRENCY at once.
    args.walks = DEFAULT_WALKS if args.concurrency is None else args.concurrency
    args.concurrency = DEFAULT_CONCURRENCY if args.accounts is not None else None


def new_job(
    args: argparse.Namespace,
    out: Path | str,
    *,
    base_url: str,
    chosen: Chosen | None = None,
    account: str | None = None,
) -> LogExport:
    """The export job the options ask for: per integration with ``--per-integration``.

    ``chosen`` is the query of this job (an account's, see ``resume.choose``); by
    default the command line's, as ``logs export``'s check settled it. ``out`` is a
    file, or a parts destination (``account``: an account of ``--accounts`` there).
    """
    from .._errors import ExportInputError
    from .._export import LogExport
    from .._export_walks import PerIntegrationExport
    from .export_output import job_options
    from .resume import Chosen

    if chosen is None:
        chosen = Chosen(
            fmt=args.format,
            page_size=args.page_size,
            integration_id=args.integration,
            per_integration=args.per_integration,
            since=getattr(args, "since", None),
            until=getattr(args, "until", None),
        )
    options = job_options(args, account=account)
    options.update(
        fmt=chosen.fmt,
        integration_id=chosen.integration_id,
        page_size=chosen.page_size,
        resume=args.resume,
        since=chosen.since,
        until=chosen.until,
    )
    walks = getattr(args, "walks", None)
    try:
        if chosen.per_integration:
            concurrency = DEFAULT_WALKS if walks is None else walks
            return PerIntegrationExport(out, base_url=base_url, concurrency=concurrency, **options)
        return LogExport(out, base_url=base_url, **options)
    except ExportInputError as exc:
        raise UsageError(str(exc)) from None


def walks_note(stats: ExportStats) -> str:
    """What the summary adds for a per-integration export (``""`` otherwise)."""
    from .._export_walks import WalksStats

    if not isinstance(stats, WalksStats):
        return ""
    gone = f", {stats.walks_gone} deleted meanwhile" if stats.walks_gone else ""
    return f"; {stats.walks:,} integrations walked side by side{gone}"


def parts_job(args: argparse.Namespace, account: Account) -> LogExport:
    """The export job of an account of ``--accounts`` into the parts destination (not opened)."""
    from .common import FAKE_SOURCE
    from .export_output import parts_destination
    from .resume import Chosen

    chosen = Chosen(
        fmt=args.format,
        page_size=args.page_size,
        integration_id=account.integration_id,
        per_integration=args.per_integration,
        since=args.since,
        until=args.until,
    )
    return new_job(
        args,
        parts_destination(args),
        base_url=FAKE_SOURCE if args.fake else account.base_url,
        chosen=chosen,
        account=account.name,
    )
