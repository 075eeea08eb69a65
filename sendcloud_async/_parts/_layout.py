"""Where each part goes: a Hive layout, ``account=NAME/date=YYYY-MM-DD/part-….EXT``.

* ``account=NAME``: the account (``_validate.account_name``: letters, digits, ``.``,
  ``_``, ``-``; nothing to escape). Its folder also holds the manifest
  (``_manifest.json``) and, for files, the writer's lock (``_manifest.lock``): names
  that a ``**/*.parquet`` (or ``*.jsonl.gz``) glob never matches.
* ``date=YYYY-MM-DD``: the UTC date of ``created_at``; a log without one goes to
  ``date=__HIVE_DEFAULT_PARTITION__``, Hive's name for null (DuckDB, Spark and
  pyarrow read it as NULL).
* ``part-SSSSSS-DIGEST.EXT``: ``SSSSSS`` is the part group's sequence number in the
  account (0, 1, ...; the order parts were committed in) and ``DIGEST`` the first
  16 hex digits of the SHA-256 of the source's committed state before the group
  and after it (the cursor range it holds) and of the writer's token (the
  manifest's ``writer``: host, process, a random part). So no two writers ever
  share a part's name, even for the same range: a writer only ever removes objects
  of its own (``_sink``), and a part of a writer that was refused or killed never
  stands where another writer's part belongs.

A part group is what one flush writes: one part per date among its logs.
"""

from __future__ import annotations

import hashlib
from datetime import UTC
from typing import Any, Final

from .._models import IntegrationLog

__all__ = [
    "LOCK_NAME",
    "MANIFEST_NAME",
    "NULL_DATE",
    "account_prefix",
    "date_of",
    "manifest_key",
    "part_key",
    "split_by_date",
]

MANIFEST_NAME: Final = "_manifest.json"
LOCK_NAME: Final = "_manifest.lock"
NULL_DATE: Final = "__HIVE_DEFAULT_PARTITION__"


def account_prefix(account: str) -> str:
    """The folder of one account's parts and manifest (ends in ``/``)."""
    return f"account={account}/"


def manifest_key(account: str) -> str:
    return account_prefix(account) + MANIFEST_NAME


def lock_key(account: str) -> str:
    return account_prefix(account) + LOCK_NAME


def date_of(log: IntegrationLog) -> str:
    """The ``date=`` folder value of ``log``."""
    created = log.created_at
    if created is None:
        return NULL_DATE
    return created.astimezone(UTC).date().isoformat()


def split_by_date(pa: Any, pc: Any, table: Any) -> list[tuple[str, Any]]:
    """``table``'s rows by ``date_of`` their ``created_at``, in Arrow: ``(date, rows)``.

    The same rule as ``date_of``, on the ``timestamp[us, UTC]`` column: its UTC date,
    ``NULL_DATE`` for null. Rows keep their order; one date gives ``table`` itself.
    (``pa``, ``pc``: pyarrow and ``pyarrow.compute``.)
    """
    days = pc.cast(table.column("created_at"), pa.date32())
    found = pc.unique(days).to_pylist()
    if len(found) <= 1:
        if not found:
            return []
        return [(NULL_DATE if found[0] is None else found[0].isoformat(), table)]
    split = []
    for day in found:
        mask = pc.is_null(days) if day is None else pc.equal(days, pa.scalar(day))
        where = pc.indices_nonzero(mask)
        first, count = where[0].as_py(), len(where)
        if where[count - 1].as_py() - first + 1 == count:  # one run (logs come in order)
            rows = table.slice(first, count)
        else:
            rows = table.filter(mask)
        split.append((NULL_DATE if day is None else day.isoformat(), rows))
    return split


def part_key(
    account: str, date: str, seq: int, before: bytes, after: bytes, writer: str, extension: str
) -> str:
    """The key of ``writer``'s part of ``date`` in group ``seq`` (states as committed JSON)."""
    digest = hashlib.sha256()
    for piece in (before, after, writer.encode()):
        digest.update(len(piece).to_bytes(8, "big"))
        digest.update(piece)
    name = f"part-{seq:06d}-{digest.hexdigest()[:16]}.{extension}"
    return f"{account_prefix(account)}date={date}/{name}"
