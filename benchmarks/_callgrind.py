"""Counting a client process's instructions with Valgrind's callgrind, phase by phase.

CPU time moves with the machine's load and with what else runs; the number of
instructions a process executes for the same work does not. A client started under
``valgrind --tool=callgrind --instr-atstart=no`` counts nothing until told to:
``counting(pid, True)`` before a measured phase, ``counting(pid, False)`` after it
(``callgrind_control -i``), then ``dump(pid)`` writes what the phase counted to a file
of its own; ``instructions(out)`` reads every phase's count once the process has
ended. Everything runs some 50 times slower under Valgrind: count small
sizes. Linux with ``valgrind`` installed (``apt-get install valgrind``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["command", "counting", "dump", "instructions", "missing"]


def missing() -> str | None:
    """Why instructions cannot be counted here (``None``: they can)."""
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install valgrind)"
    return None


def command(out: Path) -> list[str]:
    """The prefix that runs a command under callgrind, counting nothing yet, into ``out``."""
    return [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
        "--quiet",
    ]


def counting(pid: int, on: bool) -> None:
    """Start (``on``) or stop counting the instructions of process ``pid``."""
    subprocess.run(
        ["callgrind_control", "-i", "on" if on else "off", str(pid)],
        check=True,
        capture_output=True,
    )


def dump(pid: int) -> None:
    """Write what process ``pid`` counted since the last dump to a file of its own."""
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)


def instructions(out: Path) -> list[int]:
    """The instructions of each dump into ``out`` (``out.1``, ``out.2``, ...), in order.

    The file written at the process's end (what came after the last dump) is left out.
    """
    counts: dict[int, int] = {}
    for path in out.parent.glob(out.name + ".*"):
        number = path.name.rsplit(".", 1)[1]
        if number.isdigit():
            for line in path.read_text().splitlines():
                if line.startswith(("summary:", "totals:")):
                    counts[int(number)] = max(counts.get(int(number), 0), int(line.split()[1]))
    return [counts[n] for n in sorted(counts)]
