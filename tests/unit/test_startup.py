"""Importing the package and asking the command line for help load no HTTP stack.

What the time of ``--version`` and ``--help`` is made of is measured beside bare
Python in ``benchmarks/startup.py``; here, what they load, which decides it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("aiohttp", "authlib", "redis", "sendcloud_async._client", "sendcloud_async.testing")


def _loaded_after(code: str) -> list[str]:
    """The HEAVY modules a fresh interpreter holds after running ``code``."""
    probe = "\n".join(
        [
            "import json, sys",
            code,
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))",
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
    code = (
        "import contextlib, io\n"
        "from sendcloud_async._cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    main({argv!r})"
    )
    assert _loaded_after(code) == []


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
