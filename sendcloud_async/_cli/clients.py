"""The embedded fake and the clients the commands talk through."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from .._auth import Auth
from .._ratelimit import RateLimits
from .common import FAKE_INTEGRATIONS, FAKE_LOGS_PER_INTEGRATION, FAKE_SEED
from .credentials import Credentials

if TYPE_CHECKING:
    from .._client import SendcloudClient
    from ..testing import FakeSendcloud

__all__ = ["auth_for", "client_for", "maybe_fake", "rate_limit", "single_client"]


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


def auth_for(credentials: Credentials | None, fake: FakeSendcloud | None) -> Auth:
    """What a command sends as credentials: the one rule of ``--fake`` for every command.

    Without the fake (``fake`` is ``None``), ``credentials`` as they are. With it,
    the credentials the command was given (the environment's, or an account's of
    an accounts file) are sent to the fake as they would be to Sendcloud, OAuth2
    through the fake's token endpoint (never another), and the fake accepts only
    its own pair (``fake-public-key``/``fake-secret-key``, ``fake-client-id``/
    ``fake-client-secret``): any other gets 401, as from Sendcloud. ``None`` (the
    environment names none) is the fake's own Basic pair.
    """
    if fake is None:
        assert credentials is not None
        return credentials.auth()
    if credentials is None:
        return fake.basic_auth
    return credentials.auth(token_url=fake.token_url)


@asynccontextmanager
async def single_client(
    args: argparse.Namespace, credentials: Credentials | None, base_url: str
) -> AsyncIterator[SendcloudClient]:
    """The client of a one-account command: against the embedded fake with ``--fake``."""
    async with maybe_fake(args.fake) as fake:
        auth = auth_for(credentials, fake)
        async with client_for(args, auth, base_url if fake is None else fake.base_url) as client:
            yield client


def client_for(args: argparse.Namespace, auth: Auth, base_url: str) -> SendcloudClient:
    """A client with the command line's connection options."""
    from .._client import SendcloudClient  # here: --help and --version do not load aiohttp

    return SendcloudClient(
        auth=auth,
        base_url=base_url,
        timeout=args.timeout,
        max_retries=args.max_retries,
        rate_limit=rate_limit(args),
    )
