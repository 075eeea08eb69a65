"""``--resume`` continues the export its checkpoint records, whatever the command line leaves out.

A checkpoint records its export's query: the format, the page size, the
integration, the listing (account-wide, or ``--per-integration``) and the range
(``--since``, ``--until``). Resuming
continues that export, so an option the command line leaves out takes the
checkpoint's value; an option given that contradicts it is refused in one line
that says what the checkpoint holds, which option to drop to continue, and that
``--restart`` starts over with it. A checkpoint that holds no record (its
export's first request failed, say) holds nothing to continue: the options given
win and the export starts afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from msgspec import UNSET

from .._checkpoint import (
    START_OVER,
    CheckpointQuery,
    checkpoint_path,
    checkpoint_query,
    describe_difference,
    holds_nothing,
)
from .._defaults import FORMATS
from .._export_walks import LISTING
from .common import DEFAULT_PAGE_SIZE, UsageError

__all__ = ["Chosen", "Query", "choose"]


@dataclass(frozen=True, slots=True)
class Query:
    """An export's query as the command line gives it (``None``: left out)."""

    fmt: str | None = None
    #: The format the output's file name implies (``logs.csv``), if it implies one.
    implied_fmt: str | None = None
    page_size: int | None = None
    integration_id: int | None = None
    per_integration: bool = False
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Chosen:
    """The query an export runs with."""

    fmt: str
    #: ``None`` only when a checkpoint written without one says so (the server's default).
    page_size: int | None
    integration_id: int | None
    per_integration: bool
    since: datetime | None = None
    until: datetime | None = None


def choose(query: Query, out: Path, *, resume: bool, label: str = "") -> Chosen:
    """The query of the export into ``out``: with ``resume``, completed from its checkpoint.

    What the command line leaves out comes from the checkpoint (with ``resume`` and a
    readable one; the export job reports a damaged one), else from the defaults.
    An option that contradicts a checkpoint holding records is a ``UsageError``.
    """
    found = checkpoint_query(out) if resume else None
    if found is None:
        return Chosen(
            fmt=query.fmt or query.implied_fmt or FORMATS[0],
            page_size=DEFAULT_PAGE_SIZE if query.page_size is None else query.page_size,
            integration_id=query.integration_id,
            per_integration=query.per_integration,
            since=query.since,
            until=query.until,
        )
    saved, records = found
    chosen = Chosen(
        fmt=query.fmt or query.implied_fmt or saved.format,
        page_size=saved.page_size if query.page_size is None else query.page_size,
        integration_id=saved.integration_id
        if query.integration_id is None
        else query.integration_id,
        per_integration=query.per_integration or saved.listing == LISTING,
        since=saved.since if query.since is None else query.since,
        until=saved.until if query.until is None else query.until,
    )
    asked = CheckpointQuery(
        base_url=saved.base_url,  # not an option: the job itself refuses another source
        integration_id=chosen.integration_id,
        format=chosen.fmt,
        page_size=chosen.page_size,
        listing=LISTING if chosen.per_integration else saved.listing,
        codec=saved.codec,  # the file name's: the job refuses another one
        start=UNSET if chosen.since is None else chosen.since,
        end=UNSET if chosen.until is None else chosen.until,
    )
    if asked == saved or holds_nothing(records):
        return chosen
    options = [
        option
        for option, differs in (
            ("--format", query.fmt is not None and asked.format != saved.format),
            ("--page-size", asked.page_size != saved.page_size),
            ("--integration", asked.integration_id != saved.integration_id),
            ("--per-integration", asked.listing != saved.listing),
            ("--since", asked.since != saved.since),
            ("--until", asked.until != saved.until),
        )
        if differs
    ]
    if options:
        them = "it" if len(options) == 1 else "them"
        advice = (
            f"drop {' and '.join(options)} to continue it as the checkpoint says, or "
            f"{START_OVER} with {them}"
        )
    else:  # only the format the file name implies differs
        advice = f"{START_OVER}, or pick another output"
    raise UsageError(
        f"{label}cannot resume: the checkpoint {checkpoint_path(out)} is for another export "
        f"({describe_difference(asked, saved)}); {advice}"
    )
