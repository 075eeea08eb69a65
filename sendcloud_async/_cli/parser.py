"""The argument parser, built from the registered commands (``commands.COMMANDS``)."""

from __future__ import annotations

import argparse
import textwrap
from typing import Final, NoReturn

from .command import Command
from .commands import COMMANDS, GROUPS
from .common import PROG, UsageError, one_line, version_line
from .exits import help_text
from .options import general_options, network_options

__all__ = ["build_parser"]

_WIDTH: Final = 78

ENV_HELP: Final = textwrap.fill(
    "Credentials come from the environment: SENDCLOUD_PUBLIC_KEY and SENDCLOUD_SECRET_KEY "
    "(Basic) or SENDCLOUD_CLIENT_ID and SENDCLOUD_CLIENT_SECRET (OAuth2, with "
    "SENDCLOUD_TOKEN_URL to override the token endpoint); SENDCLOUD_BASE_URL overrides the "
    "API address.",
    _WIDTH,
)

_EXAMPLES: Final = (
    f"{PROG} demo",
    f"{PROG} integrations list",
    f"{PROG} logs export --out logs.jsonl",
    f"{PROG} -q logs export --out logs.csv --resume",
)


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        head, sep, rest = message.partition("unrecognized arguments: ")
        if sep:
            # Name the stray options, never echo their values (one could be a secret).
            shown = (a.split("=", 1)[0] if a.startswith("-") else "…" for a in rest.split())
            message = f"{head}{sep}{' '.join(shown)}"
        raise UsageError(f"{one_line(message)} (see {self.prog} --help)")


def _epilog(examples: tuple[str, ...], *, env: bool, exits: str) -> str:
    parts = []
    if examples:
        parts.append("examples:\n" + "\n".join(f"  $ {line}" for line in examples))
    if env:
        parts.append(ENV_HELP)
    parts.append(exits)
    return "\n\n".join(parts)


def build_parser() -> argparse.ArgumentParser:
    """The ``sendcloud-async`` argument parser, one sub-parser per registered command.

    The general and connection options are accepted before the command
    (``sendcloud-async -q logs export …``) and after it.
    """
    parser = _Parser(
        prog=PROG,
        description="Sendcloud Integrations API v3 from the command line.",
        epilog=_epilog(
            _EXAMPLES,
            env=True,
            exits=help_text(
                None,
                width=_WIDTH,
                commands=[(" ".join(c.words), c.until_stopped) for c in COMMANDS],
            ),
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version_line())
    general_options(parser, top=True)
    network_options(parser, top=True)
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    general = _Parser(add_help=False)
    general_options(general)
    network = _Parser(add_help=False)
    network_options(network)
    groups: dict[str, argparse._SubParsersAction[_Parser]] = {}
    for command in COMMANDS:
        *group_words, name = command.words
        where = top
        if group_words:
            (group,) = group_words
            if group not in groups:
                group_parser = top.add_parser(
                    group, help=GROUPS[group], description=GROUPS[group].capitalize() + "."
                )
                groups[group] = group_parser.add_subparsers(
                    dest=f"{group}_command", metavar="ACTION", required=True
                )
            where = groups[group]
        parents = [general, network] if command.network else [general]
        sub = where.add_parser(
            name,
            parents=parents,
            help=command.help,
            description=textwrap.fill(command.description, _WIDTH),
            epilog=_epilog(
                command.examples,
                env=command.network,
                exits=help_text(command.until_stopped, width=_WIDTH),
            ),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.configure(sub)
        sub.set_defaults(command_spec=command)
    return parser


def command_of(args: argparse.Namespace) -> Command | None:
    """The command the arguments name (``None``: no command given)."""
    command = getattr(args, "command_spec", None)
    return command if isinstance(command, Command) else None
