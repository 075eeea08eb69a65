"""Shared fixtures: a FakeSendcloud server on 127.0.0.1 and a client pointed at it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud


@pytest.fixture
async def fake() -> AsyncIterator[FakeSendcloud]:
    """A running FakeSendcloud with no data."""
    async with FakeSendcloud() as server:
        yield server


@pytest.fixture
async def client(fake: FakeSendcloud) -> AsyncIterator[sc.SendcloudClient]:
    """A client with Basic auth against ``fake``; retries are fast."""
    async with sc.SendcloudClient(
        auth=fake.basic_auth, base_url=fake.base_url, timeout=10.0, max_retries=2
    ) as c:
        fast_backoff(c)
        yield c


def fast_backoff(client: sc.SendcloudClient) -> None:
    """Shrink the client's retry backoff to milliseconds so tests stay quick."""
    transport = client._transport
    config = transport._config
    transport._config = dataclasses.replace(
        config, retry=dataclasses.replace(config.retry, backoff_base=0.001, backoff_max=0.01)
    )
