"""Contender: a hand-written aiohttp loop decoding pages into msgspec Structs (the baseline).

What a performance-minded user writes without an SDK: one ``ClientSession``
with a default ``Authorization: Basic`` header (``aiohttp.BasicAuth`` is deprecated
since aiohttp 3.14), one ``msgspec.json.Decoder`` built once for the page type,
``resp.links`` to follow ``rel="next"``. The Structs mirror the spec's
``integration-log`` schema, unions included; ``created_at`` becomes a ``datetime``.

``fetch`` (one GET, its body read whole) and the decoders are also the
hand-written client of ``benchmarks.watch``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from . import _common
from ._common import Options, Tally

try:
    import aiohttp
    import msgspec
    from yarl import URL
except ImportError as exc:  # pragma: no cover - depends on the environment
    _common.unavailable(exc)


class LogResponse(msgspec.Struct):
    headers: dict[str, Any] | None = None
    body: str | dict[str, Any] | None = None


class LogRequest(msgspec.Struct):
    headers: dict[str, Any] | str | None = None
    payload: dict[str, Any] | str | None = None


class IntegrationLog(msgspec.Struct):
    base_url: str
    id: int | None = None
    integration_id: int | None = None
    full_url: str | None = None
    method: str | None = None
    response_code: int | None = None
    response: LogResponse | None = None
    request: LogRequest | None = None
    created_at: datetime | None = None
    exception_type: str | None = None
    exception: str | None = None
    protected: bool = False
    additional_data: dict[str, Any] | str | None = ""


class LogList(msgspec.Struct):
    data: list[IntegrationLog]


class Integration(msgspec.Struct):
    id: int
    shop_name: str | None = None
    shop_url: str | None = None
    type: str | None = None
    started_failing_at: datetime | None = None
    last_fetched_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    service_point_enabled: bool = False
    service_point_carriers: list[str] = []
    webhook_active: bool = False
    webhook_url: str | None = None
    feedback_type: str | None = None


class IntegrationList(msgspec.Struct):
    data: list[Integration]


DECODER = msgspec.json.Decoder(LogList)
INTEGRATIONS = msgspec.json.Decoder(IntegrationList)


async def fetch(
    session: aiohttp.ClientSession,
    url: str | URL,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[aiohttp.ClientResponse, bytes]:
    """``GET url``: the (released) response and its body; ``RuntimeError`` unless 200."""
    async with session.get(url, params=params, headers=headers) as resp:
        body = await resp.read()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status} for {resp.url}: {body[:300]!r}")
    return resp, body


async def main(options: Options, tally: Tally) -> None:
    headers = {"Authorization": _common.basic_authorization()}
    async with aiohttp.ClientSession(headers=headers) as session:
        url: str | URL = options.logs_url
        params: dict[str, int] | None = {"page_size": options.page_size}
        tally.start()
        while True:
            resp, body = await fetch(session, url, params)
            link = resp.links.get("next")
            for log in DECODER.decode(body).data:
                tally.add(log.id)
            await tally.page_done()
            if link is None:
                break
            url, params = link["url"], None
        tally.stop()


def versions() -> dict[str, str]:
    return _common.versions_of(["aiohttp", "msgspec", "yarl"])


if __name__ == "__main__":
    _common.run(main, versions)
