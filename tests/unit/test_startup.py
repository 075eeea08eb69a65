"""Importing the package and asking the command line for help load no HTTP stack.

What the time of ``--version`` and ``--help`` is made of is measured beside bare
Python in ``benchmarks/startup.py``; here, what they load, which decides it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from sendcloud_async._cli import main
from sendcloud_async._cli.command import Command
from sendcloud_async._cli.commands import COMMANDS
from sendcloud_async._cli.parser import build_parser

HEAVY = ("aiohttp", "authlib", "redis", "sendcloud_async._client", "sendcloud_async.testing")

#: What running a command needs and ``--help`` must not load: the SDK's engine (the
#: export, the watch, the validators and models), the run's own modules, and the
#: libraries they import.
RUNTIME = (
    "asyncio",
    "msgspec",
    "yarl",
    "sendcloud_async._errors",
    "sendcloud_async._validate",
    "sendcloud_async._models",
    "sendcloud_async._export",
    "sendcloud_async._export_walks",
    "sendcloud_async._sources._walks",
    "sendcloud_async._export_file",
    "sendcloud_async._sources._watch",
    "sendcloud_async._sources._watch_pages",
    "sendcloud_async._sources._watch_state",
    "sendcloud_async._sources._watch_window",
    "sendcloud_async._sources._ties",
    "sendcloud_async._watchers",
    "sendcloud_async._cli.context",
    "sendcloud_async._cli.progress",
    "sendcloud_async._cli.export_run",
    "sendcloud_async._cli.watch",
    "sendcloud_async._cli.redis_watch",
)


def _loaded_after(code: str, among: tuple[str, ...] = HEAVY) -> list[str]:
    """The modules of ``among`` a fresh interpreter holds after running ``code``."""
    probe = "\n".join(
        [
            "import json, sys",
            code,
            f"print(json.dumps([m for m in {among!r} if m in sys.modules]))",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_package_loads_no_http_stack() -> None:
    assert _loaded_after("import sendcloud_async") == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--version"],
        ["--help"],
        ["logs", "export", "--help"],
        ["logs", "watch", "--help"],
        ["integrations", "list", "--help"],
    ],
)
def test_version_and_help_load_no_http_stack(argv: list[str]) -> None:
    assert _loaded_after(_cli(argv)) == []


def _cli(argv: list[str]) -> str:
    """Code that runs the command line with ``argv``, its output dropped."""
    return (
        "import contextlib, io\n"
        "from sendcloud_async._cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    main({argv!r})"
    )


def _module(command: Command) -> str:
    return "sendcloud_async._cli." + command.handlers.partition(":")[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["logs", "--help"],
        ["logs", "export", "--help"],
        ["logs", "watch", "--help"],
        ["logs", "tail", "--help"],
    ],
    ids=" ".join,
)
def test_help_loads_neither_the_runtime_nor_another_commands_module(argv: list[str]) -> None:
    """--help imports the registry and the parser; a command's --help its own module too,
    never the export or watch engine, the validators, msgspec or yarl."""
    modules = tuple(sorted({_module(c) for c in COMMANDS}))
    loaded = _loaded_after(_cli(argv), among=RUNTIME + modules)
    shown = [_module(c) for c in COMMANDS if list(c.words) == argv[: len(c.words)]]
    assert loaded == shown


def test_a_run_loads_what_the_help_does_not() -> None:
    """The guard above can fail: parsing and checking an export loads the engine."""
    code = _cli(["logs", "export", "--out", "-", "--format", "csv", "--page-size", "0"])
    assert "sendcloud_async._validate" in _loaded_after(code, among=RUNTIME)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c.words))
def test_a_commands_help_is_the_full_parsers(
    command: Command, capsys: pytest.CaptureFixture[str]
) -> None:
    """main builds only the sub-parser asked for; what it prints is the full parser's."""
    parser = build_parser()
    for word in command.words:
        (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = commands.choices[word]
    assert main([*command.words, "--help"]) == 0
    assert capsys.readouterr().out == parser.format_help()


@pytest.mark.parametrize(
    "argv",
    [
        ["-q", "logs", "export", "--out", "x.csv", "--integration", "7", "--timeout", "5"],
        ["logs", "watch", "--out", "x.jsonl", "--once", "--lookback", "0", "--start", "all"],
        ["--log-format", "json", "integrations", "get", "12", "--json", "--fake"],
        ["demo", "--keep", "d"],
    ],
    ids=lambda argv: " ".join(argv[:3]),
)
def test_the_lazy_parser_parses_as_the_full_one(argv: list[str]) -> None:
    lazy = build_parser(lazy=True).parse_args(argv)
    assert vars(lazy) == vars(build_parser().parse_args(argv))


def test_a_registry_entry_naming_no_handlers_is_refused() -> None:
    wrong = Command(words=("x",), help="h", description="d", handlers="logs_export:_configure")
    with pytest.raises(TypeError, match="logs_export:_configure is not the Handlers of x"):
        wrong.load()


def test_a_public_name_loads_what_it_needs_and_names_the_public_module() -> None:
    """``sc.SendcloudClient`` imports the client on first use; classes say sendcloud_async.X."""
    code = (
        "import sendcloud_async as sc\n"
        "client_class = sc.SendcloudClient\n"
        "from sendcloud_async._errors import NotFoundError\n"
        "assert NotFoundError.__module__ == 'sendcloud_async', NotFoundError.__module__\n"
        "assert client_class.__module__ == 'sendcloud_async'\n"
    )
    assert "aiohttp" in _loaded_after(code)
