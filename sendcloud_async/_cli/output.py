"""What the commands print: tables, JSON, sizes, the export summary and the one line a
failure becomes (``failure``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from .._errors import SendcloudError
from .._export import ExportStats
from .._export_walks import WalksStats
from .._models import Integration

__all__ = [
    "failure",
    "integration_detail",
    "integrations_table",
    "size",
    "summary",
    "summary_fields",
    "table",
    "to_json",
]


def size(n: int) -> str:
    """A byte count for people: ``812 bytes``, ``19.4 MB``."""
    value = float(n)
    for unit in ("bytes", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{n:,} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def failure(exc: BaseException) -> str:
    """The one line an exception that stopped a command (or an account) becomes.

    The rule for every command: a failed write names the file and what was being
    done (``cannot write logs.jsonl (appending the new logs): No space left on
    device``, from ``_fileio``); another ``OSError`` names its file if it has one;
    the SDK's errors say themselves; anything else is ``unexpected Type: message``.
    Never a traceback: it could show a credential.
    """
    if isinstance(exc, OSError) and type(exc).__str__ is OSError.__str__:
        reason = exc.strerror or str(exc) or type(exc).__name__
        if exc.filename is not None:
            other = f" → {exc.filename2}" if exc.filename2 is not None else ""
            return f"{exc.filename}{other}: {reason}"
        return reason
    if isinstance(exc, OSError | SendcloudError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


def summary(stats: ExportStats) -> str:
    """The one-line summary of a finished export."""
    head = ""
    if stats.resumed:
        previous = stats.records - stats.run_records
        head = f"resumed after {previous:,} records"
        if stats.discarded_bytes:
            head += f" (discarded {stats.discarded_bytes:,} bytes of an unfinished page)"
        head += "; "
    return (
        f"{head}exported {stats.run_records:,} records in {stats.run_pages:,} pages "
        f"({stats.rate:,.0f} rec/s, {stats.elapsed:.2f} s); "
        f"{stats.destination or stats.path} holds {stats.records:,} records ({size(stats.bytes)})"
    )


def summary_fields(stats: ExportStats) -> dict[str, object]:
    """What ``summary()`` says, as the fields of its JSON line (``--log-format json``)."""
    fields: dict[str, object] = {
        "path": stats.destination or str(stats.path),
        "records": stats.records,
        "bytes": stats.bytes,
        "run_records": stats.run_records,
        "run_pages": stats.run_pages,
        "elapsed": round(stats.elapsed, 3),
        "rate": round(stats.rate, 1),
        "resumed": stats.resumed,
        "discarded_bytes": stats.discarded_bytes,
    }
    if isinstance(stats, WalksStats):
        fields.update(walks=stats.walks, walks_gone=stats.walks_gone)
    return fields


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _printable(text: str) -> str:
    """``text`` without control characters (a shop name must not drive the terminal)."""
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


def _cut(text: str, width: int | None) -> str:
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, max_width: int | None = None
) -> str:
    """Left-aligned columns two spaces apart, one header row; cells cut at ``max_width``."""
    cells = [[_cut(_printable(cell), max_width) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [list(headers), *cells]
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
    return table(headers, rows)


def integration_detail(item: Integration) -> str:
    """Every field of one integration, one per row."""
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
    return table(("FIELD", "VALUE"), rows)


def to_json(value: object) -> str:
    """``value`` (SDK models included) as indented JSON."""
    return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()
