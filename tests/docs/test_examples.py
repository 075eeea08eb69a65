"""Every Python block of README.md and docs/*.md runs against a real FakeSendcloud.

How a block is run depends on how it is written:

- A block titled ``Fragment: …`` (```` ```python title="Fragment: with a client" ````)
  is the body of an ``async def`` that the harness calls with ``client`` (a
  ``SendcloudClient`` of the fake's account) and ``fake`` (the running
  ``FakeSendcloud``); ``sc`` (``sendcloud_async``) and ``asyncio`` are imported.
  Anything else it uses, it imports or defines itself.
- A block that defines ``test_`` functions is a user's test file: it runs under pytest
  in a fresh directory, with pytest-asyncio in its default (strict) mode.
- Any other block is a complete program, run as ``python example.py`` in a fresh
  directory.

Only the address and the credentials are swapped in, as text: Sendcloud's API and
token URLs, the placeholder keys (``your-public-key`` and friends) and a Redis URL
become the fake's (or a loopback ``redis-server``'s), and the ``SENDCLOUD_*``
environment variables the examples read are set to the fake's credentials.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```python(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.M | re.S,
)
SNIPPET = re.compile(r'^--8<-- "(?P<path>[^":]+)(?::(?P<start>\d*)(?::(?P<end>\d*))?)?"$', re.M)
TITLE = re.compile(r'title="(?P<title>[^"]*)"')

SENDCLOUD_API = "https://panel.sendcloud.sc/api/v3"
SENDCLOUD_TOKEN_URL = "https://account.sendcloud.com/oauth2/token/"
REDIS_PLACEHOLDER = "redis://redis.internal:6379/0"
PROGRAM_TIMEOUT = 60.0


@dataclass(frozen=True)
class Example:
    """One fenced Python block of a Markdown page."""

    path: Path
    line: int
    title: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def kind(self) -> str:
        if self.title.startswith("Fragment"):
            return "fragment"
        if re.search(r"^(async )?def test_", self.code, re.M):
            return "pytest"
        return "program"


def _page_text(path: Path) -> str:
    """The page with its ``--8<--`` snippets inlined, as mkdocs renders it."""

    def inline(match: re.Match[str]) -> str:
        lines = (ROOT / match["path"]).read_text(encoding="utf-8").splitlines(keepends=True)
        start, end = int(match["start"] or 1), int(match["end"] or len(lines))
        return "".join(lines[start - 1 : end])

    return SNIPPET.sub(inline, path.read_text(encoding="utf-8"))


def collect(paths: list[Path]) -> list[Example]:
    """Every ```` ```python ```` block of the pages, with its line number."""
    examples = []
    for path in paths:
        text = _page_text(path)
        for match in FENCE.finditer(text):
            title = TITLE.search(match["info"])
            examples.append(
                Example(
                    path=path,
                    line=text.count("\n", 0, match.start()) + 1,
                    title=title["title"] if title else "",
                    code=textwrap.dedent(match["body"]),
                )
            )
    return examples


EXAMPLES = collect(SOURCES)


def _swap(code: str, fake: FakeSendcloud, redis_url: str | None) -> str:
    """Point the example at the fake: only addresses and credentials change."""
    swaps = {
        SENDCLOUD_API: fake.base_url,
        SENDCLOUD_TOKEN_URL: fake.token_url,
        "your-public-key": fake.public_key,
        "your-secret-key": fake.secret_key,
        "your-client-id": fake.client_id,
        "your-client-secret": fake.client_secret,
    }
    if redis_url is not None:
        swaps[REDIS_PLACEHOLDER] = redis_url
    for old, new in swaps.items():
        code = code.replace(old, new)
    return code


def _environment(fake: FakeSendcloud) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENDCLOUD_")}
    env.update(
        SENDCLOUD_PUBLIC_KEY=fake.public_key,
        SENDCLOUD_SECRET_KEY=fake.secret_key,
        SENDCLOUD_BASE_URL=fake.base_url,
        SENDCLOUD_WEBHOOK_SECRET=fake.webhook_secret,
    )
    return env


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """A loopback redis-server for the examples that name a Redis URL, else None."""
    example: Example = request.node.callspec.params["example"]
    if REDIS_PLACEHOLDER not in example.code:
        yield None
        return
    from tests.scale.conftest import RedisServer, free_port, redis_binary

    server = RedisServer(redis_binary(), free_port(), tmp_path / "redis")
    server.workdir.mkdir()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


async def _run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), PROGRAM_TIMEOUT)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
        return -9, out.decode(errors="replace") + f"\n(killed after {PROGRAM_TIMEOUT} s)"
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


def _seed(fake: FakeSendcloud) -> None:
    """The data every example finds: a few integrations (one with id 1234) and logs."""
    fake.seed(integrations=2, logs_per_integration=150, seed=1)
    fake.add_integration(id=1234, shop_name="My shop")
    for n in range(3):
        fake.add_log(1234, base_url="https://shop.example", response_code=500 + n)


def test_every_page_is_collected() -> None:
    """The collector finds blocks on the README and on the docs pages, of every kind."""
    pages = {e.path.name for e in EXAMPLES}
    assert {"README.md", "getting-started.md", "testing.md"} <= pages
    assert {e.kind for e in EXAMPLES} == {"fragment", "pytest", "program"}


def test_collector_reads_titles_indents_and_snippets(tmp_path: Path) -> None:
    """Titles pick fragments, indented blocks are dedented, other languages are skipped."""
    page = tmp_path / "page.md"
    page.write_text(
        '# Page\n\n```python\nprint(1)\n```\n\n- item\n\n  ```python title="Fragment: x"\n'
        "  await client.integrations.list()\n  ```\n\n```bash\necho no\n```\n",
        encoding="utf-8",
    )
    found = collect([page])
    assert [(e.line, e.kind, e.code) for e in found] == [
        (3, "program", "print(1)\n"),
        (9, "fragment", "await client.integrations.list()\n"),
    ]


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
async def test_example(
    example: Example, fake: FakeSendcloud, redis_url: str | None, tmp_path: Path
) -> None:
    """The block runs to the end without an error against the fake."""
    _seed(fake)
    code = _swap(example.code, fake, redis_url)
    if example.kind == "fragment":
        await _run_fragment(example, code, fake)
        return
    env = _environment(fake)
    if example.kind == "pytest":
        (tmp_path / "pytest.ini").write_text(
            "[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n",
            encoding="utf-8",
        )
        (tmp_path / "test_example.py").write_text(code, encoding="utf-8")
        args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_example.py"]
    else:
        (tmp_path / "example.py").write_text(code, encoding="utf-8")
        args = [sys.executable, "example.py"]
    code_, out = await _run(args, tmp_path, env)
    assert code_ == 0, f"{example.id} exited with {code_}:\n{out}"
    if example.kind == "pytest":
        assert re.search(r"^\d+ passed", out.splitlines()[-1]), out


async def _run_fragment(example: Example, code: str, fake: FakeSendcloud) -> None:
    source = "async def __example__(client, fake):\n" + textwrap.indent(code, "    ") + "    pass\n"
    namespace: dict[str, Any] = {"sc": sc, "asyncio": asyncio}
    exec(compile(source, example.id, "exec"), namespace)  # the docs' own example code
    async with sc.SendcloudClient(
        auth=fake.basic_auth, base_url=fake.base_url, timeout=10.0
    ) as client:
        await namespace["__example__"](client, fake)
