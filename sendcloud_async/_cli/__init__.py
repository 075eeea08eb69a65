"""The ``sendcloud-async`` command: demo, exactly-once log export, integrations.

::

    sendcloud-async [-q|-v] [--log-format text|json] [connection options] COMMAND ...
    sendcloud-async demo [--keep DIR | --out FILE] [--format jsonl|csv]
    sendcloud-async logs export --out FILE|- [--format jsonl|csv] [--integration ID]
                                [--page-size N] [--resume | --restart] [--fake]
    sendcloud-async logs export --accounts accounts.toml --out-dir DIR [--concurrency N] ...
    sendcloud-async integrations list [--json]
    sendcloud-async integrations get ID [--json]
    sendcloud-async logs tail --redis URL [--out FILE] [--once] ...
    sendcloud-async fake serve [--accounts N] [--rate LOGS_PER_S] [--port P] ...

Credentials come from the environment (or the accounts file), never from the
command line, and are never printed. The exit statuses, and what Ctrl-C and
SIGTERM end each command with, are one table in ``exits``.

The modules:

* ``entry``: the entry point (``main``: one line per outcome, SIGTERM via ``signals``); the
  package's ``main`` imports it on first use, so ``--version`` loads nothing else;
* ``exits``: the exit statuses of every command, which ``main``, ``--help`` and the docs use;
* ``parser`` and ``options``: the arguments, built from the registry;
* ``commands``: the registry. A command is a ``Command`` (``command``) defined in its
  own module (``demo``, ``logs_export`` with ``many_accounts``, ``integrations``, ...);
  registering one is one entry in ``commands.COMMANDS``;
* ``credentials`` and ``accounts``: where credentials come from (the environment, the
  TOML accounts file);
* ``formats`` (format from the file name, the stdout writer), ``destination``
  (directories, never clobbering an unfinished export) and ``output`` (tables,
  summaries);
* ``progress`` (stderr: the live status line, or rate-bounded log lines), ``logline``
  (what a line looks like: for a terminal, timestamped text, JSON), ``activity``
  (what requests wait for, from ``sendcloud_async._observe``) and ``context`` (what
  a command is handed);
* ``clients``: the embedded fake and the clients.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None, **streams: Any) -> int:
    """Run the command line (``argv``: the arguments, default ``sys.argv[1:]``); its status.

    ``streams``: ``env``, ``stdout``, ``stderr`` as ``main.main`` takes them. The
    modules are imported here, not when the package is, and ``--version`` alone is
    answered before any of them: it loads nothing but the version.
    """
    if list(sys.argv[1:] if argv is None else argv) == ["--version"]:
        from .common import version_line

        print(version_line(), file=streams.get("stdout") or sys.stdout)
        return 0
    from .entry import main as run

    return run(argv, **streams)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (for tests and documentation)."""
    from .parser import build_parser as build

    return build()
