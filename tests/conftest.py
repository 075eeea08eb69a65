"""Shared fixtures: a FakeSendcloud server on 127.0.0.1 and a client pointed at it; an
S3-compatible server and a new bucket in it."""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import settings

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud, RetryEvent, instant_retries
from sendcloud_async.testing._spec import SpecCheck
from tests._log_secrets import SecretScanner
from tests._s3server import S3Server, running_s3_server

# Every FakeSendcloud this suite starts checks the SDK's requests and its own
# responses against the official OpenAPI spec; leaving it with a violation fails
# the test (see sendcloud_async/testing/_spec.py for what is checked and exempt).
SpecCheck.default = True

# Hypothesis: a bounded number of examples everywhere (tests may ask for more or
# fewer with @settings); on CI (CI=true) also derandomized, so a run is reproducible.
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
async def fake() -> AsyncIterator[FakeSendcloud]:
    """A running FakeSendcloud with no data, validating its traffic against the spec."""
    async with FakeSendcloud(validate_spec=True) as server:
        yield server
        assert server.spec_violations == [], "traffic that breaks the OpenAPI spec"


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


@pytest.fixture(autouse=True)
def log_secrets() -> Iterator[SecretScanner]:
    """Every log record of the test, at DEBUG, must hold no credential (tests/_log_secrets.py)."""
    scanner = SecretScanner()
    with scanner.watching():
        yield scanner
    scanner.raise_for_findings()


_buckets = itertools.count()


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    """An S3-compatible server (moto) on 127.0.0.1, one per test module."""
    with running_s3_server() as server:
        yield server


@pytest.fixture
def bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket; this process's environment points S3 clients at the server."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    name = f"bucket-{next(_buckets)}"
    s3_server.create_bucket(name)
    return name
