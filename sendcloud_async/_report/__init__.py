"""What is failing: a report of exception logs, computed in one pass in bounded memory.

The engine behind ``sendcloud-async logs report``, usable on its own::

    from sendcloud_async._report import read_export, render_html, to_json

    report = read_export("logs.jsonl")          # or: await read_account(client, source=…)
    Path("report.html").write_text(render_html(report), encoding="utf-8")
    print(to_json(report))

The modules:

* ``_readers``: an export (JSON Lines, CSV; one ``Reader`` per format, ``register``
  adds one, e.g. Parquet) as batches of ``LogRow``;
* ``_masks``: similar messages grouped (numbers, ids, hosts, query values masked);
* ``_sketch``: fixed-memory counting (Space-Saving top-k, the bucket widths);
* ``_stats``: ``ReportBuilder``, the one pass, its counts in bounded memory;
* ``_analysis``: the findings read off those counts (started and stopped failing,
  trends, unusual rates) and how the outputs name integrations and durations;
* ``_model``: ``Report`` and its parts (msgspec Structs);
* ``_feed``: ``read_export`` and ``read_account``;
* ``_json``, ``_html`` (with ``_svg``, the charts, and ``_html_assets``, the page's
  stylesheet, script and Content-Security-Policy): the outputs. The terminal table
  is the command line's (``sendcloud_async._cli.report_table``).
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from ._analysis import describe, duration
    from ._feed import read_account, read_export
    from ._html import render_html
    from ._json import from_json, schema, to_json
    from ._model import Finding, IntegrationReport, LogRow, Ranked, Report, Timeline, Trend
    from ._readers import READERS, STDIN, Reader, ReportInputError, Source, open_source, register
    from ._stats import ReportBuilder

#: Where each name is defined: they are imported on first use (PEP 562), so that the
#: command line registering ``logs report`` (it needs ``_readers`` only) loads no more.
_DEFINED_IN: _typing.Final = {
    **dict.fromkeys(("describe", "duration"), "._analysis"),
    **dict.fromkeys(("read_account", "read_export"), "._feed"),
    "render_html": "._html",
    **dict.fromkeys(("from_json", "schema", "to_json"), "._json"),
    **dict.fromkeys(
        ("Finding", "IntegrationReport", "LogRow", "Ranked", "Report", "Timeline", "Trend"),
        "._model",
    ),
    **dict.fromkeys(
        ("READERS", "STDIN", "Reader", "ReportInputError", "Source", "open_source", "register"),
        "._readers",
    ),
    "ReportBuilder": "._stats",
}

__all__ = [
    "READERS",
    "STDIN",
    "Finding",
    "IntegrationReport",
    "LogRow",
    "Ranked",
    "Reader",
    "Report",
    "ReportBuilder",
    "ReportInputError",
    "Source",
    "Timeline",
    "Trend",
    "describe",
    "duration",
    "from_json",
    "open_source",
    "read_account",
    "read_export",
    "register",
    "render_html",
    "schema",
    "to_json",
]


if not _typing.TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        module = _DEFINED_IN.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(_importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value
