"""What the benchmarks share to run FakeSendcloud in a process of its own and measure one.

A server module answers ``python -m MODULE --serve CONFIG`` by printing its port, then
one JSON line per command read on stdin (``stats``, ``reset``), until ``quit``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

__all__ = ["ROOT", "ServerProcess", "_cpu", "_env", "_rss"]

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _rss() -> int:
    """This process's resident set size in bytes (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/status") as stream:
            for line in stream:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class ServerProcess:
    """The FakeSendcloud process: a port on stdout, then ``stats`` / ``quit`` on stdin."""

    def __init__(self, config: Any, *, module: str, startup: float = 120) -> None:
        """Start ``python -m module --serve CONFIG`` (a dataclass) and read its port."""
        command = [sys.executable, "-m", module, "--serve", json.dumps(asdict(config))]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port = int(self._line(startup))

    def _line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        stdout = self.process.stdout
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not line or not line[0].strip():
            self.stop()
            raise RuntimeError("the FakeSendcloud process did not answer")
        return line[0]

    def ask(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(self._line(60))
        return answer

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v3"

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/oauth2/token/"

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write("quit\n")
                self.process.stdin.flush()
                self.process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
