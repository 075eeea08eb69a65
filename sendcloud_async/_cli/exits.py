"""The exit statuses of every command: one table, read by ``main``, ``--help`` and the docs.

``main`` turns each outcome into its status; every command's ``--help`` ends with
the table and what Ctrl-C and SIGTERM do to that command (``help_text``); the
``Exit status`` section of docs/cli.md holds the same rows and rule (a test
compares them, and another runs every command to each of its statuses).

The rule for Ctrl-C and SIGTERM: both stop every command cleanly, and what it
wrote is saved. A command that finishes by itself (an export, ``demo``,
``integrations``, ``logs watch --once``) and is stopped before it finished exits
130 (Ctrl-C) or 143 (SIGTERM), as a shell reports a process a signal ended: the
work is not done, and a scheduler should see that. A command that runs until it
is stopped (``logs watch`` without ``--once``, ``fake serve``, ...) exits 0 when
stopped, because that is how it ends: systemd, Docker and Kubernetes stop a
service with SIGTERM and count 0 as a clean stop.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "TABLE",
    "ExitStatus",
    "UntilStopped",
    "help_text",
    "stop_rule",
    "stop_sentence",
    "stop_status",
]

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
#: Stopped by Ctrl-C (SIGINT) before the command finished (128 + 2).
EXIT_INTERRUPTED: Final = 130
#: Stopped by SIGTERM before the command finished (128 + 15, as a shell reports it).
EXIT_TERMINATED: Final = 143


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """One row of the table: a status and what it means."""

    code: int
    meaning: str


#: Every status a command of ``sendcloud-async`` ends with, and nothing else.
TABLE: Final[tuple[ExitStatus, ...]] = (
    ExitStatus(
        EXIT_OK,
        "success (also a --resume of an export that had finished); for a command that runs "
        "until it is stopped, also a stop by Ctrl-C or SIGTERM",
    ),
    ExitStatus(
        EXIT_FAILURE,
        "failed at run time: Sendcloud or Redis refused (401, 403, 404, a wrong password, "
        "...), a 5xx or a connection failure outlasted the retries, a write failed, a port "
        "was taken, or an account of --accounts failed",
    ),
    ExitStatus(
        EXIT_USAGE,
        "bad usage or input, found before any request is sent: an option, the credentials, "
        "the accounts file, the output path, the checkpoint or the export a report reads",
    ),
    ExitStatus(
        EXIT_INTERRUPTED,
        "Ctrl-C (SIGINT) stopped a command before it finished; what it wrote is saved",
    ),
    ExitStatus(
        EXIT_TERMINATED,
        "SIGTERM stopped a command before it finished, as Ctrl-C does; what it wrote is saved",
    ),
)


@dataclass(frozen=True, slots=True)
class UntilStopped:
    """A command that runs until it is stopped: Ctrl-C and SIGTERM end it with status 0.

    ``when`` says when it does (``""``: always), e.g. ``"without --once"``;
    ``applies`` says whether the parsed arguments ask for such a run.
    """

    when: str = ""
    applies: Callable[[argparse.Namespace], bool] = lambda _args: True


def stop_rule(commands: Sequence[tuple[str, UntilStopped | None]]) -> str:
    """What Ctrl-C and SIGTERM do, for every command: ``(name, until_stopped)`` of each."""
    until = [name if u.when == "" else f"{name} {u.when}" for name, u in commands if u is not None]
    return (
        "Ctrl-C and SIGTERM stop every command cleanly, and what it wrote is saved. A command "
        f"that finishes by itself exits {EXIT_INTERRUPTED} (Ctrl-C) or {EXIT_TERMINATED} "
        "(SIGTERM) when stopped before it finished. A command that runs until it is stopped "
        f"exits {EXIT_OK} when stopped, because that is how it ends: "
        + (", ".join(until) if until else "none does")
        + "."
    )


def stop_status(
    until_stopped: UntilStopped | None, args: argparse.Namespace, *, terminated: bool
) -> int:
    """The status of a command that Ctrl-C (or SIGTERM, ``terminated``) stopped."""
    if until_stopped is not None and until_stopped.applies(args):
        return EXIT_OK
    return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


def stop_sentence(until_stopped: UntilStopped | None) -> str:
    """What Ctrl-C and SIGTERM do to one command, in its ``--help``."""
    stopped = "Ctrl-C and SIGTERM stop it cleanly, and what it wrote is saved."
    early = (
        f"stopped before it finished, it exits {EXIT_INTERRUPTED} (Ctrl-C) "
        f"or {EXIT_TERMINATED} (SIGTERM)"
    )
    runs = f"it runs until it is stopped, so it then exits {EXIT_OK}"
    if until_stopped is None:
        return f"{stopped} {_capital(early)}."
    if not until_stopped.when:
        return f"{stopped} {_capital(runs)}."
    return f"{stopped} {_capital(until_stopped.when)} {runs}; otherwise, {early}."


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def help_text(
    until_stopped: UntilStopped | None,
    *,
    width: int,
    commands: Sequence[tuple[str, UntilStopped | None]] | None = None,
) -> str:
    """The ``exit status`` block of ``--help``: the table, then what a stop does.

    ``commands`` (``(name, until_stopped)`` of every command): the top-level help,
    which states the rule for all of them.
    """
    lines = ["exit status:"]
    for row in TABLE:
        lines.extend(
            textwrap.wrap(
                row.meaning,
                width,
                initial_indent=f"  {row.code:<5}",
                subsequent_indent=" " * 7,
                break_on_hyphens=False,
            )
        )
    sentence = stop_rule(commands) if commands is not None else stop_sentence(until_stopped)
    lines.append("")
    lines.extend(textwrap.wrap(sentence, width, break_on_hyphens=False))
    return "\n".join(lines)
