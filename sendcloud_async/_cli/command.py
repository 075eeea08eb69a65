"""What a command of ``sendcloud-async`` is: its place and help, and what it does.

A ``Command`` (an entry of the registry, ``commands.COMMANDS``) says everything
the top-level ``--help`` shows and the statuses it ends with; it names the module
that holds its ``Handlers`` (its options, their check, its run). That module is
imported only when the command is asked for (its own ``--help`` included), so that
the registry, and the parser of every other command, load nothing of it.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .exits import UntilStopped

if TYPE_CHECKING:
    from .context import Context

__all__ = ["Command", "Handlers"]


@dataclass(frozen=True, slots=True)
class Handlers:
    """What a command does, defined in its own module.

    ``configure`` adds the command's own options; ``run`` does the work and returns
    the exit status; ``check`` (optional) refuses contradictory options after
    parsing by raising ``UsageError``. ``configure`` is what the command's
    ``--help`` runs: its module imports what ``run`` needs inside ``run``.
    """

    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Context], int]
    check: Callable[[argparse.Namespace], None] | None = None


@dataclass(frozen=True, slots=True)
class Command:
    """One command, e.g. ``logs export``: list it in ``commands.COMMANDS`` to register it.

    ``network`` commands also take the shared connection options (``--fake``,
    ``--timeout``, ``--max-retries``, ``--no-rate-limit``).
    """

    #: The words that call it: ``("demo",)`` or ``("logs", "export")``.
    words: tuple[str, ...]
    help: str
    description: str
    #: ``"MODULE:NAME"``: the ``Handlers`` named ``NAME`` in the module ``MODULE`` of
    #: this package (``load``).
    handlers: str
    network: bool = True
    #: Command lines shown under "examples" in ``--help``.
    examples: tuple[str, ...] = ()
    #: Printed when Ctrl-C stops the command.
    interrupt_hint: str = "interrupted"
    #: Set for a command that runs until it is stopped: Ctrl-C and SIGTERM then end it
    #: with status 0 (``exits``); otherwise a stop before it finished is 130 or 143.
    until_stopped: UntilStopped | None = None

    def load(self) -> Handlers:
        """The command's ``Handlers`` (imports its module, once)."""
        module, _, name = self.handlers.partition(":")
        found = getattr(importlib.import_module(f"{__package__}.{module}"), name, None)
        if not isinstance(found, Handlers):
            raise TypeError(f"{self.handlers} is not the Handlers of {' '.join(self.words)}")
        return found
