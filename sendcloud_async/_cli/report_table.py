"""``logs report`` in the terminal: a table per integration and the top lists, in 80 columns.

Everything reads without colour: trends are arrows and signed percentages, the
status of an integration is a word, and the sparklines are block characters
(``▁▂▃▄▅▆▇█``, or ``.:-=+*#%`` where the output cannot encode them). Colour (bold
headings, red for what got worse, green for what got better) is added only on a
terminal, and never when ``NO_COLOR`` is set or ``TERM`` is ``dumb``. Texts from the
logs go through ``output``'s rule: no control character reaches the terminal.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final, TextIO

from .._report import IntegrationReport, Ranked, Report, describe, duration
from .._report._analysis import period_days
from .._report._svg import spread
from .output import _printable

__all__ = ["WIDTH", "Look", "look_for", "render_table"]

#: The table's width, whatever the terminal's.
WIDTH: Final = 80
#: Integrations listed one by one (the most logs first), and those with a finding.
ROWS: Final = 20
#: Entries of each top list, and the lines a value may take.
TOP: Final = 5
_VALUE_LINES: Final = 3

_BLOCKS: Final = "▁▂▃▄▅▆▇█"
_ASCII_BLOCKS: Final = ".:-=+*#%"
_EIGHTHS: Final = " ▏▎▍▌▋▊▉█"
_STATUS: Final = {
    "started": "started failing",
    "stopped": "stopped failing",
    "episode": "started and stopped failing",
}


class Look:
    """How the table is drawn: with Unicode block characters or ASCII, with colour or not."""

    def __init__(self, *, unicode: bool = True, colour: bool = False) -> None:
        self.unicode = unicode
        self.colour = colour

    def paint(self, text: str, code: str) -> str:
        """``text`` in an ANSI style (``1`` bold, ``2`` dim, ``31`` red, ``32`` green)."""
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and text else text

    @property
    def dot(self) -> str:
        return "·" if self.unicode else "|"

    @property
    def ellipsis(self) -> str:
        return "…" if self.unicode else "~"


def look_for(stream: TextIO, env: Mapping[str, str]) -> Look:
    """The look for ``stream``: Unicode if its encoding has the block characters; colour on
    a terminal unless ``NO_COLOR`` is set (to anything) or ``TERM`` is ``dumb``."""
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        (_BLOCKS + _EIGHTHS + "↑↓→…·–").encode(encoding)
        unicode = True
    except (UnicodeEncodeError, LookupError):
        unicode = False
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    colour = tty and not env.get("NO_COLOR") and env.get("TERM") != "dumb"
    return Look(unicode=unicode, colour=colour)


def _cut(text: str, width: int, look: Look) -> str:
    text = _printable(text)
    if not look.unicode:
        text = text.encode("ascii", "replace").decode()
    return text if len(text) <= width else text[: max(width - 1, 0)] + look.ellipsis


def sparkline(values: Sequence[int], cells: int, look: Look) -> str:
    """``values`` in ``cells`` characters: blank for none, else eight heights."""
    parts = spread(values, cells)
    high = max(parts, default=0.0)
    blocks = _BLOCKS if look.unicode else _ASCII_BLOCKS
    if high <= 0:
        return " " * cells
    top = len(blocks) - 1
    line = "".join(
        " " if v < 0.5 else blocks[min(top, max(0, math.ceil(v / high * len(blocks)) - 1))]
        for v in parts
    )
    return line.ljust(cells)


def _bar(share: float, width: int, look: Look) -> str:
    if not look.unicode:
        return ("#" * round(share * width)).ljust(width)
    eighths = round(max(0.0, min(1.0, share)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[part] if part else "")).ljust(width)


def _when(value: datetime | None, years: bool) -> str:
    if value is None:
        return "-"
    value = value.astimezone(UTC)
    return f"{value:%Y-%m-%d}" if years else f"{value:%m-%d %H:%M}"


def _trend(item: IntegrationReport, look: Look) -> str:
    trend = item.trend
    if trend.direction == "few":
        return "-"
    up, down, flat = ("↑", "↓", "→") if look.unicode else ("^", "v", "=")
    arrow = {"rising": up, "falling": down}.get(trend.direction, flat)
    if trend.change is None:
        text = f"{arrow} new"
    else:
        change = trend.change * 100
        text = f"{arrow} {change:+.0f}%" if abs(change) < 1000 else f"{arrow} >+999%"
    colour = {"rising": "31", "falling": "32"}.get(trend.direction)
    return look.paint(text, colour) if colour else text


def _visible(text: str) -> int:
    """The width of ``text`` on the screen (ANSI styles take none)."""
    width, inside = 0, False
    for char in text:
        if char == "\x1b":
            inside = True
        elif inside:
            inside = char != "m"
        else:
            width += 1
    return width


def _pad(text: str, width: int, *, right: bool = False) -> str:
    gap = " " * max(width - _visible(text), 0)
    return gap + text if right else text + gap


def _top_line(item: IntegrationReport, look: Look) -> str:
    parts = []
    status = _STATUS.get(item.status)
    if status:
        parts.append(look.paint(status, "31" if item.status == "started" else "32"))
    if item.unusual:
        parts.append(look.paint("unusually many", "31"))
    if item.exception_types:
        top = item.exception_types[0]
        parts.append(f"{(top.value.rpartition('.')[2] or '(no type)')} {top.share:.0%}")
    if item.response_codes:
        top = item.response_codes[0]
        parts.append(f"{top.value or 'no code'} {top.share:.0%}")
    if item.messages:
        parts.append(item.messages[0].value)
    text = f" {look.dot} ".join(parts)
    return "   " + _cut_styled(text, WIDTH - 3, look)


def _cut_styled(text: str, width: int, look: Look) -> str:
    """``text`` (which may hold ANSI styles) cut to ``width`` visible characters."""
    if _visible(text) <= width:
        return text
    out, shown, inside = [], 0, False
    for char in text:
        if char == "\x1b":
            inside = True
        if inside:
            out.append(char)
            inside = char != "m"
            continue
        if shown >= width - 1:
            break
        out.append(char)
        shown += 1
    return "".join(out) + ("\x1b[0m" if look.colour else "") + look.ellipsis


def _notable(item: IntegrationReport) -> bool:
    return item.status != "ongoing" or item.unusual or item.trend.direction in ("rising", "falling")


def _table(report: Report, look: Look) -> list[str]:
    years = (
        report.first_seen is not None
        and report.last_seen is not None
        and report.first_seen.year != report.last_seen.year
    )
    date_width = 10 if years else 11
    spark = WIDTH - 17 - 10 - 6 - 2 * date_width - 8 - 6
    head = (
        _pad("INTEGRATION", 17)
        + " "
        + _pad("LOGS", 10, right=True)
        + " "
        + _pad("SHARE", 6, right=True)
        + " "
        + _pad("FIRST SEEN", date_width)
        + " "
        + _pad("LAST SEEN", date_width)
        + " "
        + _pad("TREND", 8)
        + " "
        + "ACTIVITY"
    )
    lines = [look.paint(head.rstrip(), "1")]
    shown = [
        item
        for n, item in enumerate(report.integrations)
        if n < ROWS or _notable(item)  # an integration with a finding is always listed
    ]
    for item in shown:
        row = " ".join(
            [
                _pad(_cut(describe(item), 17, look), 17),
                _pad(f"{item.logs:,}", 10, right=True),
                _pad(f"{item.share * 100:.1f}%", 6, right=True),
                _pad(_when(item.first_seen, years), date_width),
                _pad(_when(item.last_seen, years), date_width),
                _pad(_trend(item, look), 8),
                sparkline(item.series, spark, look),
            ]
        )
        lines.append(row.rstrip())
        lines.append(_top_line(item, look))
    hidden = len(report.integrations) - len(shown)
    if hidden > 0:
        lines.append(
            f"{look.ellipsis} and {hidden:,} more integrations (--json or --html lists all)"
        )
    return lines


def _top(title: str, items: Sequence[Ranked], empty: str, look: Look) -> list[str]:
    lines = [look.paint(title, "1")]
    if not items:
        return [*lines, "  none"]
    for item in items[:TOP]:
        count = f"{item.count:,}" if not item.error else f"~{item.count:,}"
        text = f"  {count:>10}  {item.share * 100:5.1f}%  {_bar(item.share, 10, look)}  "
        room = WIDTH - len(text)
        # A long value (a message) wraps onto two more lines: similar ones differ at the end.
        value = _cut(item.value or empty, room * _VALUE_LINES, look)
        wrapped = textwrap.wrap(value, room, break_long_words=True, break_on_hyphens=False) or [
            value
        ]
        lines.append(text + wrapped[0])
        lines.extend(" " * len(text) + more for more in wrapped[1:])
    return lines


def _findings(report: Report, look: Look) -> list[str]:
    lines = [look.paint("FINDINGS", "1")]
    if not report.findings:
        text = (
            "Nothing stands out: no integration started or stopped failing in the period, "
            "none fails unusually often, none is rising or falling."
        )
        return lines + textwrap.wrap(text, WIDTH, initial_indent="  ", subsequent_indent="  ")
    bullet = "•" if look.unicode else "-"
    colours = {"started_failing": "31", "unusual": "31", "rising": "31"}
    for finding in report.findings:
        wrapped = textwrap.wrap(
            _cut(finding.text, 400, look),
            WIDTH,
            initial_indent=f"  {bullet} ",
            subsequent_indent="    ",
            break_on_hyphens=False,
        )
        colour = colours.get(finding.kind, "32")
        lines.extend(look.paint(line, colour) for line in wrapped)
    return lines


def _heading(report: Report, look: Look) -> list[str]:
    counted = [i for i in report.integrations if not i.other]
    first = f"{report.logs:,} exception logs of {len(counted):,} integrations"
    if len(counted) < len(report.integrations):
        first += " and others"
    lines = [look.paint(_cut(f"What is failing: {first}", WIDTH, look), "1")]
    lines.append(_cut(f"from {report.source}", WIDTH, look))
    if report.first_seen is not None and report.last_seen is not None:
        days = period_days(report)
        span = f"{days:,.1f} days" if days >= 1 else duration(days * 86_400)
        arrow = "→" if look.unicode else "->"
        lines.append(
            f"{report.first_seen:%Y-%m-%d %H:%M} {arrow} {report.last_seen:%Y-%m-%d %H:%M} UTC "
            f"({span}); ACTIVITY spans the period"
        )
    if report.logs_without_time:
        lines.append(f"{report.logs_without_time:,} logs have no time")
    return lines


def render_table(report: Report, look: Look | None = None) -> str:
    """The report for a terminal: at most ``WIDTH`` columns a line."""
    look = look or Look()
    if not report.logs:
        return f"No exception logs in {_cut(report.source, WIDTH - 24, look)}."
    lines = _heading(report, look)
    lines.append("")
    lines.extend(_table(report, look))
    for title, items, empty in (
        ("EXCEPTION TYPES", report.exception_types, "(none)"),
        ("RESPONSE CODES", report.response_codes, "(none)"),
        ("MESSAGES (similar ones grouped)", report.messages, "(no message)"),
        ("ENDPOINTS", report.endpoints, "(no URL)"),
    ):
        lines.append("")
        lines.extend(_top(title, items, empty, look))
    lines.append("")
    lines.extend(_findings(report, look))
    return "\n".join(lines)
