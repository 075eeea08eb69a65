"""Contender: ``httpx.AsyncClient`` with pydantic v2 models.

The usual modern stack without an SDK: one ``AsyncClient`` with basic auth,
``Model.model_validate_json(response.content)`` on a page model (pydantic's
fastest path: JSON parsed and validated in Rust in one pass), ``response.links``
to follow ``rel="next"``. The models mirror the spec's ``integration-log``
schema, unions included; ``created_at`` becomes a ``datetime``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from . import _common
from ._common import Options, Tally

try:
    import httpx
    from pydantic import BaseModel
except ImportError as exc:  # pragma: no cover - depends on the environment
    _common.unavailable(exc)


class LogResponse(BaseModel):
    headers: dict[str, Any] | None = None
    body: str | dict[str, Any] | None = None


class LogRequest(BaseModel):
    headers: dict[str, Any] | str | None = None
    payload: dict[str, Any] | str | None = None


class IntegrationLog(BaseModel):
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


class LogList(BaseModel):
    data: list[IntegrationLog]


async def main(options: Options, tally: Tally) -> None:
    auth = httpx.BasicAuth(_common.USER, _common.PASSWORD)
    async with httpx.AsyncClient(auth=auth, timeout=60) as client:
        url = options.logs_url
        params: dict[str, int] | None = {"page_size": options.page_size}
        tally.start()
        while True:
            response = await client.get(url, params=params)
            if response.status_code != 200:
                raise RuntimeError(
                    f"HTTP {response.status_code} for {response.url}: {response.content[:300]!r}"
                )
            for log in LogList.model_validate_json(response.content).data:
                tally.add(log.id)
            await tally.page_done()
            link = response.links.get("next")
            if link is None:
                break
            url, params = link["url"], None
        tally.stop()


def versions() -> dict[str, str]:
    return _common.versions_of(["httpx", "httpcore", "pydantic", "pydantic-core"])


if __name__ == "__main__":
    _common.run(main, versions)
