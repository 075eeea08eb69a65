"""The embedded fake and the clients the commands talk through."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from .._auth import Auth
from .._client import SendcloudClient
from .._ratelimit import RateLimits
from .common import FAKE_INTEGRATIONS, FAKE_LOGS_PER_INTEGRATION, FAKE_SEED

if TYPE_CHECKING:
    from ..testing import FakeSendcloud

__all__ = ["client_for", "maybe_fake", "rate_limit", "single_client"]


def rate_limit(args: argparse.Namespace) -> RateLimits | None:
    """Sendcloud's published per-account limits, unless ``--no-rate-limit``."""
    return None if getattr(args, "no_rate_limit", False) else RateLimits()


@asynccontextmanager
async def maybe_fake(
    enabled: bool, *, seed: tuple[int, int, int] | None = None
) -> AsyncIterator[FakeSendcloud | None]:
    """A started, seeded FakeSendcloud when ``enabled``, else ``None``."""
    if not enabled:
        yield None
        return
    from ..testing import FakeSendcloud  # only the commands that serve one load the server

    integrations, per_integration, seed_value = seed or (
        FAKE_INTEGRATIONS,
        FAKE_LOGS_PER_INTEGRATION,
        FAKE_SEED,
    )
    async with FakeSendcloud() as fake:
        fake.seed(integrations=integrations, logs_per_integration=per_integration, seed=seed_value)
        yield fake


@asynccontextmanager
async def single_client(
    args: argparse.Namespace, auth: Auth | None, base_url: str
) -> AsyncIterator[SendcloudClient]:
    """The client of a one-account command: against the embedded fake with ``--fake``."""
    async with maybe_fake(args.fake) as fake:
        if fake is not None:
            auth, base_url = fake.basic_auth, fake.base_url
        assert auth is not None
        async with client_for(args, auth, base_url) as client:
            yield client


def client_for(args: argparse.Namespace, auth: Auth, base_url: str) -> SendcloudClient:
    """A client with the command line's connection options."""
    return SendcloudClient(
        auth=auth,
        base_url=base_url,
        timeout=args.timeout,
        max_retries=args.max_retries,
        rate_limit=rate_limit(args),
    )
