"""Every command of ``sendcloud-async``. To add one, list its ``Command`` in ``COMMANDS``."""

from __future__ import annotations

from typing import Final

from .command import Command
from .demo import DEMO
from .fake_serve import FAKE_SERVE
from .integrations import INTEGRATIONS_GET, INTEGRATIONS_LIST
from .logs_export import LOGS_EXPORT
from .logs_report import LOGS_REPORT
from .logs_tail import LOGS_TAIL
from .watch import LOGS_WATCH

__all__ = ["COMMANDS", "GROUPS"]

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
