"""Every command of ``sendcloud-async``. To add one, list its ``Command`` in ``COMMANDS``."""

from __future__ import annotations

from typing import Final

from .command import Command
from .demo import DEMO
from .integrations import INTEGRATIONS_GET, INTEGRATIONS_LIST
from .logs_export import LOGS_EXPORT
from .watch import LOGS_WATCH

__all__ = ["COMMANDS", "GROUPS"]

#: In the order ``--help`` lists them.
COMMANDS: Final[tuple[Command, ...]] = (
    DEMO,
    LOGS_EXPORT,
    LOGS_WATCH,
    INTEGRATIONS_LIST,
    INTEGRATIONS_GET,
)

#: The help line of each command group (the first word of a two-word command).
GROUPS: Final = {
    "logs": "integration exception logs",
    "integrations": "list or show integrations",
}
