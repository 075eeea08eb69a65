"""Every command of ``sendcloud-async``. To add one, list its ``Command`` in ``COMMANDS``.

An entry holds what the help shows and names the module of the command's
``Handlers`` (``command``); nothing here imports a command's module, so that the
top-level ``--help``, and a command's own, load only what they show.
"""

from __future__ import annotations

from typing import Final

from .command import Command
from .common import PROG, RESUME_HINT
from .exits import UntilStopped

__all__ = ["COMMANDS", "GROUPS"]

DEMO: Final = Command(
    words=("demo",),
    help="export the logs of an embedded fake Sendcloud (no credentials, no network)",
    description="Start the embedded FakeSendcloud that --fake uses, list its integrations, "
    "export its exception logs with the real export path and check that every log is in "
    "the file exactly once, then report what is failing (logs report) and write the "
    "report's page. The files go to a temporary directory that is removed at the end, "
    "unless --keep DIR or --out FILE says where to keep them; the page goes beside a kept "
    "export, else to the user's cache directory (--report FILE chooses).",
    handlers="demo:DEMO",
    network=False,
    examples=(
        f"{PROG} demo",
        f"{PROG} demo --keep demo/ --format csv",
    ),
)

LOGS_EXPORT: Final = Command(
    words=("logs", "export"),
    help="export exception logs to a file, exactly once, resumable",
    description="Export exception logs to JSON Lines or CSV. After every page the file is "
    "fsync-ed and a checkpoint beside it (FILE.checkpoint.json) is replaced atomically; "
    "--resume continues after the last complete page, so every log is written exactly once "
    "even if the run was killed. Ctrl-C or SIGTERM lets the page in hand finish and saves "
    "the checkpoint. A URL (s3://, gs://, az://, file://) or --format parquet is a "
    "directory of parts instead, whose manifest holds the checkpoint.",
    handlers="logs_export:LOGS_EXPORT",
    examples=(
        f"{PROG} logs export --out logs.jsonl",
        f"{PROG} logs export --out logs.csv --integration 1234",
        f"{PROG} logs export --out logs.jsonl --resume      # after a kill or Ctrl-C",
        f"{PROG} logs export --out - | jq .exception_type    # JSON Lines to stdout",
        f"{PROG} logs export --accounts accounts.toml --out-dir exports/",
        f"{PROG} logs export --out logs.jsonl --per-integration   # integrations side by side",
        f"{PROG} logs export --fake --out demo.jsonl         # no credentials needed",
        f"{PROG} logs export --out s3://bucket/logs --format parquet   # parts in a bucket",
        f"{PROG} logs export --out logs.jsonl.gz --since 2026-11-01T00:00:00Z",
    ),
    interrupt_hint=RESUME_HINT,
)

LOGS_WATCH: Final = Command(
    words=("logs", "watch"),
    help="append new exception logs to a file as they come, exactly once",
    description="Poll for new exception logs and append them to FILE (JSON Lines or CSV), "
    "or to DIR/NAME.jsonl for every account of an accounts file. After every batch the "
    "file is fsync-ed and the watch state beside it (FILE.watch.json) is replaced "
    "atomically, so a restart after a kill continues exactly after the last saved batch: "
    "every log is written once. Integrations that start or stop failing are printed on "
    "stderr (and appended to --events FILE). Ctrl-C or SIGTERM lets the batch in hand "
    "finish and saves the state.",
    handlers="logs_watch:LOGS_WATCH",
    examples=(
        f"{PROG} logs watch --out logs.jsonl",
        f"{PROG} logs watch --out logs.csv --start all --once     # for cron",
        f"{PROG} logs watch --accounts accounts.toml --out-dir watch/ --events health.jsonl",
        f"{PROG} logs watch --fake --out demo.jsonl --interval 2  # logs keep coming",
    ),
    interrupt_hint=f"{PROG}: stopped; every log written so far is saved",
    until_stopped=UntilStopped("without --once", lambda args: not args.once),
)

LOGS_TAIL: Final = Command(
    words=("logs", "tail"),
    help="read the Redis watch's account streams as JSON Lines (a consumer group)",
    description="Read every stream PREFIX:NAME that logs watch --redis writes, as one "
    "consumer of a consumer group, and write each entry as one JSON line "
    '{"account": NAME, "entry": ID, "log": {...}} to stdout or --out FILE. A batch is '
    "flushed and fsync-ed before it is acknowledged (XACK), so nothing acknowledged is "
    "missing; entries read but not acknowledged when a tail is killed are written again "
    "by the next run (at least once: deduplicate on account and entry). New account "
    "streams are found as they appear; entries another consumer left pending for "
    "--claim-idle seconds are taken over. It runs until Ctrl-C or SIGTERM (with --once: "
    "until what is there has been written).",
    handlers="logs_tail:LOGS_TAIL",
    network=False,
    examples=(
        f"{PROG} logs tail --redis redis://localhost:6379/0",
        f"{PROG} logs tail --redis redis://localhost:6379/0 --out logs.jsonl",
        f"{PROG} logs tail --redis redis://localhost:6379/0 --group billing --once | jq .log.id",
    ),
    interrupt_hint=f"{PROG}: stopped",
    until_stopped=UntilStopped("without --once", lambda args: not args.once),
)

LOGS_REPORT: Final = Command(
    words=("logs", "report"),
    help="what is failing: a table, one HTML page (--html) or JSON, from an export or the account",
    description="Summarise exception logs: which integrations fail most, since when, whether "
    "it gets worse or better, which exception types, messages (similar ones grouped), "
    "response codes and endpoints dominate, which integrations started or stopped failing in "
    "the period and whose rate is unusual. Reads an export of logs export (JSON Lines or "
    "CSV, a path, a file:// URL or - for standard input) or, without FILE_OR_URL, the "
    "account through the API, with the export's progress and rate gate. One pass, in memory "
    "bounded whatever the number of logs.",
    handlers="logs_report:LOGS_REPORT",
    examples=(
        f"{PROG} logs report logs.jsonl",
        f"{PROG} logs report logs.csv --html report.html",
        f"{PROG} logs report --fake --html report.html   # no credentials needed",
        f"{PROG} logs report                             # the account, through the API",
        f"{PROG} logs report logs.jsonl --json | jq '.findings[].text'",
        f"{PROG} logs export --out - | {PROG} logs report -",
    ),
    interrupt_hint="interrupted; no report was written",
)

INTEGRATIONS_LIST: Final = Command(
    words=("integrations", "list"),
    help="every integration, as a table",
    description="List every integration of the account: a table, or JSON with --json.",
    handlers="integrations:INTEGRATIONS_LIST",
    examples=(
        f"{PROG} integrations list",
        f"{PROG} integrations list --json | jq '.[].shop_name'",
        f"{PROG} integrations list --fake       # no credentials needed",
    ),
)

INTEGRATIONS_GET: Final = Command(
    words=("integrations", "get"),
    help="one integration",
    description="Show every field of one integration: a table, or JSON with --json.",
    handlers="integrations:INTEGRATIONS_GET",
    examples=(
        f"{PROG} integrations get 1234",
        f"{PROG} integrations get 1234 --json",
    ),
)

FAKE_SERVE: Final = Command(
    words=("fake", "serve"),
    help="serve a FakeSendcloud whose logs keep coming, with N accounts, to try the watch",
    description="Start FakeSendcloud on 127.0.0.1 with N accounts (each with its own "
    "credentials and its own integration) and keep adding new exception logs at --rate a "
    "second, spread evenly over the accounts. The accounts file that points at it (the TOML "
    "that --accounts reads, base_url included) goes to stdout, or to --write-accounts FILE. "
    "Run logs watch --accounts against it, alone or as many workers with --redis, and logs "
    "tail to read what they write. It runs until Ctrl-C or SIGTERM. The credentials are "
    "test values: the server accepts them and nothing else, and listens on loopback only.",
    handlers="fake_serve:FAKE_SERVE",
    network=False,
    examples=(
        f"{PROG} fake serve > accounts.toml",
        f"{PROG} fake serve --accounts 8 --rate 50 --write-accounts accounts.toml",
        f"{PROG} fake serve --auth oauth2 --initial-logs 1000 --port 8089",
    ),
    interrupt_hint=f"{PROG}: stopped",
    until_stopped=UntilStopped(),
)

#: In the order ``--help`` lists them.
COMMANDS: Final[tuple[Command, ...]] = (
    DEMO,
    LOGS_EXPORT,
    LOGS_WATCH,
    LOGS_TAIL,
    LOGS_REPORT,
    INTEGRATIONS_LIST,
    INTEGRATIONS_GET,
    FAKE_SERVE,
)

#: The help line of each command group (the first word of a two-word command).
GROUPS: Final = {
    "logs": "integration exception logs",
    "integrations": "list or show integrations",
    "fake": "a FakeSendcloud to try the commands against",
}
