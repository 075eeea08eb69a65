"""``logs export`` into parts or a compressed file, and over a range of dates.

The options (``--compression``, ``--part-records``, ``--since``, ``--until``), their
check, what they add to a job, and the check of a parts destination before an
export begins. The engine is the library's (``LogExport``: ``writes_parts``,
``output_compression``, ``_sources._range``); this module is imported by the
options, so it loads nothing heavy until it runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._defaults import (
    DEFAULT_EXPORT_ROLL_SECONDS,
    EXPORT_COMPRESSIONS,
    compression_suffix,
    output_compression,
    writes_parts,
)
from .common import UsageError, extension
from .formats import STDOUT, format_for
from .options import positive, seconds

if TYPE_CHECKING:
    from .._export import LogExport

__all__ = [
    "account_file",
    "check_destinations",
    "check_output",
    "job_options",
    "output_options",
    "parts_destination",
    "range_options",
]


def output_options(group: argparse._ArgumentGroup) -> None:
    """``--compression``, ``--roll-records`` and ``--roll-seconds``."""
    group.add_argument(
        "--compression",
        choices=EXPORT_COMPRESSIONS,
        default=None,
        help="a file: gzip or zstd (default: from the file name, .gz or .zst; each page "
        "is one complete gzip member or zstd frame, so --resume works as for a plain "
        "file); parts: each part's codec (Parquet: zstd, snappy, gzip or none, default "
        "zstd; JSON Lines and CSV: none, gzip or zstd, default none)",
    )
    group.add_argument(
        "--roll-records",
        type=positive,
        default=None,
        metavar="N",
        help="parts: publish a part once it holds N logs (1,000,000)",
    )
    group.add_argument(
        "--roll-seconds",
        type=seconds,
        default=None,
        metavar="S",
        help="parts: publish what is buffered with the first page committed S seconds or "
        "more after the last publication (looked at per page, not by a timer); the "
        "manifest (and so a resume) moves on only with published parts "
        f"({DEFAULT_EXPORT_ROLL_SECONDS:g})",
    )


def _moment(text: str) -> datetime:
    """An aware ISO 8601 date-time (the package's rule: a naive one is refused)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {text!r}") from None
    from .. import _validate as check  # here: --help does not load the validators
    from .._errors import InvalidInputError

    try:
        check.aware_datetime(value, "the date-time")
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(
            f"{exc}: {text!r} (add Z or +HH:MM, e.g. {text}Z)"
        ) from None
    return value


def range_options(group: argparse._ArgumentGroup) -> None:
    """``--since`` and ``--until``."""
    group.add_argument(
        "--since",
        type=_moment,
        default=None,
        metavar="ISO",
        help="only logs created at or after this aware ISO 8601 date-time (2026-11-01T00:00:00Z)",
    )
    group.add_argument(
        "--until",
        type=_moment,
        default=None,
        metavar="ISO",
        help="only logs created before this aware ISO 8601 date-time; the export stops there "
        "instead of reading the account to its end",
    )


def check_output(args: argparse.Namespace) -> None:
    """Refuse what does not combine; set ``args.parts`` (the export is a directory of parts)."""
    fmt = format_for(args.out, args.format)
    if args.since is not None and args.until is not None and args.until <= args.since:
        raise UsageError(
            f"--until ({args.until.isoformat()}) must be later than --since "
            f"({args.since.isoformat()})"
        )
    if args.out == STDOUT:
        for given, option in (
            (args.compression, "--compression"),
            (args.roll_records, "--roll-records"),
            (args.roll_seconds, "--roll-seconds"),
            (args.since, "--since"),
            (args.until, "--until"),
        ):
            if given is not None:
                raise UsageError(
                    f"{option} needs an output file or a parts destination; standard output "
                    "(--out -) gets every log as it is (pipe it through gzip to compress it)"
                )
        if fmt == "parquet":
            raise UsageError("--format parquet writes parts: give --out DIR or --out URL")
        args.parts = False
        return
    if args.accounts is not None and args.out is None:
        args.parts = writes_parts(args.out_dir, fmt)  # parts of every account in --out-dir
        # Without parts, each account's file is named after its format and compression.
        name = Path(args.out_dir or "").name if args.parts else account_file("NAME", fmt, args)
    else:
        args.parts = args.out is not None and writes_parts(args.out, fmt)
        name = Path(args.out or "").name
    try:
        output_compression(name, fmt, args.compression, parts=args.parts)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for given, option in (
        (args.roll_records, "--roll-records"),
        (args.roll_seconds, "--roll-seconds"),
    ):
        if given is not None and not args.parts:
            raise UsageError(
                f"{option} goes with parts (--out URL, or --format parquet), not with a file"
            )


def account_file(name: str, fmt: str, args: argparse.Namespace) -> str:
    """The file name of an account of ``--accounts --out-dir``: ``NAME.jsonl[.gz|.zst]``."""
    return f"{name}.{extension(fmt)}{compression_suffix(args.compression)}"


def parts_destination(args: argparse.Namespace) -> str:
    """Where the parts of ``--accounts`` go: ``--out`` (a URL or directory), else ``--out-dir``."""
    out: str = args.out if args.out is not None else args.out_dir
    return out


def job_options(args: argparse.Namespace, *, account: str | None = None) -> dict[str, Any]:
    """What the output and range options add to an export job (``LogExport``'s keywords).

    ``account``: an account of ``--accounts`` (its parts' folder, and the ``account``
    column in them); ``None``: the one account of ``--out``.
    """
    options: dict[str, Any] = {
        name: getattr(args, option, None)
        for name, option in (
            ("compression", "compression"),
            ("since", "since"),
            ("until", "until"),
            ("part_records", "roll_records"),
            ("part_seconds", "roll_seconds"),
        )
    }
    if account is not None:
        options.update(account=account, account_column=True)
    return options


async def check_destinations(
    jobs: Sequence[tuple[str, LogExport]], *, resume: bool, restart: bool
) -> None:
    """Before a parts export begins: each job's manifest as the rules for an output want it.

    With ``--resume``, a checkpoint of another export is refused (``UsageError``, as
    for a file); without ``--resume`` or ``--restart``, an unfinished export is
    not replaced (``refuse_unfinished``, the rule of every output). With ``--restart``
    nothing is read: the manifest is replaced whatever it holds, a damaged one too
    (as a damaged checkpoint file is). Reads only.
    """
    from .._errors import ExportInputError, MissingExtraError
    from .destination import refuse_unfinished

    if restart:  # the jobs are open (their destinations checked); what they hold is not read
        return
    for label, job in jobs:
        try:
            state = await job.recorded()
            if resume and state is not None:
                job.verify(state)
        except (ExportInputError, MissingExtraError) as exc:
            raise UsageError(f"{label}{exc}") from None
        if not resume and state is not None:
            refuse_unfinished(job.destination, state.records, state.done, label=label)
