"""The ``sendcloud-async`` command: demo, exactly-once log export, integrations.

::

    sendcloud-async [-q|-v] [connection options] COMMAND ...
    sendcloud-async demo [--keep DIR | --out FILE] [--format jsonl|csv]
    sendcloud-async logs export --out FILE|- [--format jsonl|csv] [--integration ID]
                                [--page-size N] [--resume | --restart] [--fake]
    sendcloud-async logs export --accounts accounts.toml --out-dir DIR [--concurrency N] ...
    sendcloud-async integrations list [--json]
    sendcloud-async integrations get ID [--json]

Credentials come from the environment (or the accounts file), never from the
command line, and are never printed. Exit status: 0 success, 1 a failure at
run time (the API refused, a 5xx after retries, a write failed, an account
failed), 2 bad usage or input (found before any request is sent), 130
interrupted (Ctrl-C), 143 stopped (SIGTERM); the checkpoint is saved either way.

The modules:

* ``main``: the entry point (one line per outcome, exit statuses, SIGTERM via ``signals``);
* ``parser`` and ``options``: the arguments, built from the registry;
* ``commands``: the registry. A command is a ``Command`` (``command``) defined in its
  own module (``demo``, ``logs_export`` with ``many_accounts``, ``integrations``, ...);
  registering one is one entry in ``commands.COMMANDS``;
* ``credentials`` and ``accounts``: where credentials come from (the environment, the
  TOML accounts file);
* ``formats`` (format from the file name, the stdout writer), ``destination``
  (directories, never clobbering an unfinished export) and ``output`` (tables,
  summaries);
* ``progress`` (the stderr line), ``activity`` (what requests wait for, from
  ``sendcloud_async._observe``) and ``context`` (what a command is handed);
* ``clients``: the embedded fake and the clients.
"""

from .main import main
from .parser import build_parser

__all__ = ["build_parser", "main"]
