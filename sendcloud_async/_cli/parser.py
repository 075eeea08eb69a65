"""The argument parser, built from the registered commands (``commands.COMMANDS``).

The top-level parser lists every command with its help line (the registry's); a
command's own options are added, and its module imported, when the arguments name
it (``main``), so that ``--help`` and a command's ``--help`` load only what they show.
"""

from __future__ import annotations

import argparse
import functools
import textwrap
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, NoReturn

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


if TYPE_CHECKING:
    _SubParsers = argparse._SubParsersAction[_Parser]
else:  # not subscriptable at run time
    _SubParsers = argparse._SubParsersAction


class _Commands(_SubParsers):
    """The commands (or a group's actions): each one's sub-parser is completed by its
    ``pending`` function the first time the arguments name it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending: dict[str, Callable[[], None]] = {}

    def complete(self, name: str) -> None:
        build = self.pending.pop(name, None)
        if build is not None:
            build()

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        if isinstance(values, list) and values:  # the name, then its arguments
            self.complete(values[0])
        super().__call__(parser, namespace, values, option_string)


def _commands(parser: _Parser, **kwargs: Any) -> _Commands:
    action = parser.add_subparsers(action=_Commands, **kwargs)
    assert isinstance(action, _Commands)
    return action


def _complete(sub: _Parser, command: Command) -> None:
    """Give ``sub`` everything ``command``'s ``--help`` shows; imports its module."""
    sub.description = textwrap.fill(command.description, _WIDTH)
    sub.epilog = _epilog(
        command.examples,
        env=command.network,
        exits=help_text(command.until_stopped, width=_WIDTH),
    )
    general_options(sub)
    if command.network:
        network_options(sub)
    command.load().configure(sub)


def _epilog(examples: tuple[str, ...], *, env: bool, exits: str) -> str:
    parts = []
    if examples:
        parts.append("examples:\n" + "\n".join(f"  $ {line}" for line in examples))
    if env:
        parts.append(ENV_HELP)
    parts.append(exits)
    return "\n\n".join(parts)


def build_parser(*, lazy: bool = False) -> argparse.ArgumentParser:
    """The ``sendcloud-async`` argument parser, one sub-parser per registered command.

    The general and connection options are accepted before the command
    (``sendcloud-async -q logs export …``) and after it. ``lazy``: a command's
    sub-parser gets its options (and its module is imported) only when the arguments
    name it, as ``main`` parses; otherwise every command's has them (tests, docs).
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
    top = _commands(parser, dest="command", metavar="COMMAND")
    groups: dict[str, _Commands] = {}
    for command in COMMANDS:
        *group_words, name = command.words
        where = top
        if group_words:
            (group,) = group_words
            if group not in groups:
                group_parser = top.add_parser(
                    group, help=GROUPS[group], description=GROUPS[group].capitalize() + "."
                )
                groups[group] = _commands(
                    group_parser, dest=f"{group}_command", metavar="ACTION", required=True
                )
            where = groups[group]
        sub = where.add_parser(
            name, help=command.help, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        sub.set_defaults(command_spec=command)
        where.pending[name] = functools.partial(_complete, sub, command)
    if not lazy:
        for where in [top, *groups.values()]:
            for name in list(where.pending):
                where.complete(name)
    return parser


def command_of(args: argparse.Namespace) -> Command | None:
    """The command the arguments name (``None``: no command given)."""
    command = getattr(args, "command_spec", None)
    return command if isinstance(command, Command) else None
