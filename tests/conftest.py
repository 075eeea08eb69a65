"""Shared fixtures: a FakeSendcloud server on 127.0.0.1 and a client pointed at it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator

import pytest

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud, RetryEvent, instant_retries


@pytest.fixture
async def fake() -> AsyncIterator[FakeSendcloud]:
    """A running FakeSendcloud with no data."""
    async with FakeSendcloud() as server:
        yield server


@pytest.fixture
def retries() -> Iterator[list[RetryEvent]]:
    """Retries are instant during the test; the list records each retry the SDK made."""
    with instant_retries() as events:
        yield events


@pytest.fixture
async def client(
    fake: FakeSendcloud, retries: list[RetryEvent]
) -> AsyncIterator[sc.SendcloudClient]:
    """A client with Basic auth against ``fake``; retries are instant (see ``retries``)."""
    async with sc.SendcloudClient(
        auth=fake.basic_auth, base_url=fake.base_url, timeout=10.0, max_retries=2
    ) as c:
        yield c


def fast_backoff(client: sc.SendcloudClient) -> None:
    """Shrink the client's retry backoff to milliseconds (prefer the ``retries`` fixture)."""
    transport = client._transport
    config = transport._config
    transport._config = dataclasses.replace(
        config, retry=dataclasses.replace(config.retry, backoff_base=0.001, backoff_max=0.01)
    )
