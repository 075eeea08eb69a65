"""Contender: the client openapi-python-client generates from the spec (httpx + attrs).

Generated at bench time into ``benchmarks/_generated/integrations_client`` (see
``benchmarks/generate_client.py``). It is used as its README shows:
``AuthenticatedClient`` (``prefix="Basic"``) and
``sc_public_v3_integrations_get_retrieve_integrations_logs.asyncio_detailed``.
The generated operation takes ``cursor`` as a ``datetime`` (the spec says
``format: date-time``) and does not follow ``Link`` headers, so the loop parses
``Link`` itself and passes the cursor back as a ``datetime``, as a user must.
"""

from __future__ import annotations

import importlib
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import _common
from ._common import Options, Tally

GENERATED_DIR = Path(__file__).resolve().parent.parent / "_generated"
PACKAGE = "integrations_client"

sys.path.insert(0, str(GENERATED_DIR))
try:
    client_module: Any = importlib.import_module(f"{PACKAGE}.client")
    types_module: Any = importlib.import_module(f"{PACKAGE}.types")
    logs_api: Any = importlib.import_module(
        f"{PACKAGE}.api.exception_logs.sc_public_v3_integrations_get_retrieve_integrations_logs"
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    _common.unavailable(f"generated client not importable (run benchmarks.generate_client): {exc}")


def next_cursor(link_header: str | None) -> datetime | None:
    """The ``cursor`` query value of the ``rel="next"`` URL in a ``Link`` header, as a datetime."""
    if not link_header:
        return None
    for link in link_header.split(","):
        target, _, params = link.partition(";")
        if 'rel="next"' in params:
            query = parse_qs(urlsplit(target.strip().strip("<>")).query)
            return datetime.fromisoformat(query["cursor"][0])
    return None


async def main(options: Options, tally: Tally) -> None:
    token = _common.basic_authorization().removeprefix("Basic ")
    client = client_module.AuthenticatedClient(
        base_url=options.base_url, token=token, prefix="Basic", raise_on_unexpected_status=True
    )
    async with client:
        cursor: Any = types_module.UNSET
        tally.start()
        while True:
            response = await logs_api.asyncio_detailed(
                client=client, cursor=cursor, page_size=options.page_size
            )
            if response.status_code != 200 or response.parsed is None:
                raise RuntimeError(f"HTTP {response.status_code}: {response.content[:300]!r}")
            for log in response.parsed.data:
                tally.add(log.id)
            await tally.page_done()
            following = next_cursor(response.headers.get("link"))
            if following is None:
                break
            cursor = following
        tally.stop()


def versions() -> dict[str, str]:
    return _common.versions_of(["openapi-python-client", "httpx", "httpcore", "attrs"])


if __name__ == "__main__":
    _common.run(main, versions)
