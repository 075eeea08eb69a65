"""What a command of ``sendcloud-async`` is: its place, its options and its handler."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from .context import Context
from .exits import UntilStopped

__all__ = ["Command"]


@dataclass(frozen=True, slots=True)
class Command:
    """One command, e.g. ``logs export``: list it in ``commands.COMMANDS`` to register it.

    ``configure`` adds the command's own options; ``run`` does the work and returns
    the exit status; ``check`` (optional) refuses contradictory options after
    parsing by raising ``UsageError``. ``network`` commands also take the shared
    connection options (``--fake``, ``--timeout``, ``--max-retries``,
    ``--no-rate-limit``).
    """

    #: The words that call it: ``("demo",)`` or ``("logs", "export")``.
    words: tuple[str, ...]
    help: str
    description: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Context], int]
    check: Callable[[argparse.Namespace], None] | None = None
    network: bool = True
    #: Command lines shown under "examples" in ``--help``.
    examples: tuple[str, ...] = ()
    #: Printed when Ctrl-C stops the command.
    interrupt_hint: str = "interrupted"
    #: Set for a command that runs until it is stopped: Ctrl-C and SIGTERM then end it
    #: with status 0 (``exits``); otherwise a stop before it finished is 130 or 143.
    until_stopped: UntilStopped | None = None
