"""Contender: a hand-written aiohttp loop with the standard library's ``json.loads``.

Same loop as ``raw_msgspec`` but records stay plain dicts: no types, no
validation, ``created_at`` stays a string. It shows what msgspec's typed
decoding costs (or saves) against untyped stdlib decoding.
"""

from __future__ import annotations

import json

from . import _common
from ._common import Options, Tally

try:
    import aiohttp
    from yarl import URL
except ImportError as exc:  # pragma: no cover - depends on the environment
    _common.unavailable(exc)


async def main(options: Options, tally: Tally) -> None:
    headers = {"Authorization": _common.basic_authorization()}
    async with aiohttp.ClientSession(headers=headers) as session:
        url: str | URL = options.logs_url
        params: dict[str, int] | None = {"page_size": options.page_size}
        tally.start()
        while True:
            async with session.get(url, params=params) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status} for {resp.url}: {body[:300]!r}")
                link = resp.links.get("next")
            for log in json.loads(body)["data"]:
                tally.add(log["id"])
            await tally.page_done()
            if link is None:
                break
            url, params = link["url"], None
        tally.stop()


def versions() -> dict[str, str]:
    return _common.versions_of(["aiohttp", "yarl"])


if __name__ == "__main__":
    _common.run(main, versions)
