"""Contender: sendcloud_async, ``client.logs.iter(page_size=…)``.

The SDK as its README shows it: ``SendcloudClient`` with ``BasicAuth``, one
``async for`` over ``IntegrationLog`` Structs. The per-page work of the latency
scenario runs after every ``page_size`` records, which is exactly once per page.
If ``sendcloud_async`` cannot be imported (the SDK is mid-change), this
contender reports itself unavailable.
"""

from __future__ import annotations

from . import _common
from ._common import Options, Tally

try:
    import sendcloud_async as sc

    sc.SendcloudClient, sc.BasicAuth  # noqa: B018 - fail here if the public API is incomplete
except Exception as exc:  # pragma: no cover - a half-written SDK can raise anything on import
    _common.unavailable(f"import sendcloud_async failed: {type(exc).__name__}: {exc}")


async def main(options: Options, tally: Tally) -> None:
    auth = sc.BasicAuth(_common.USER, _common.PASSWORD)
    async with sc.SendcloudClient(auth=auth, base_url=options.base_url) as client:
        page_size = options.page_size
        work = tally.work
        tally.start()
        async for log in client.logs.iter(page_size=page_size):
            tally.add(log.id)
            if work and tally.count % page_size == 0:
                await tally.page_done()
        tally.stop()


def versions() -> dict[str, str]:
    found = _common.versions_of(["aiohttp", "msgspec", "yarl"])
    return {"sendcloud-async": str(sc.__version__), **found}


if __name__ == "__main__":
    _common.run(main, versions)
