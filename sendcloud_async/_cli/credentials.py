"""Credentials and the API address from the environment (never from the command line)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .._auth import Auth, BasicAuth
from .._defaults import DEFAULT_BASE_URL
from .._errors import InvalidInputError
from .._oauth2 import OAuth2ClientCredentials
from .._validate import normalize_base_url
from .common import (
    ENV_BASE_URL,
    ENV_CLIENT_ID,
    ENV_CLIENT_SECRET,
    ENV_PUBLIC_KEY,
    ENV_SECRET_KEY,
    ENV_TOKEN_URL,
    FAKE_SOURCE,
    UsageError,
)

__all__ = [
    "Credentials",
    "base_url",
    "command_credentials",
    "credentials_from_env",
    "env_value",
    "oauth2",
]


@dataclass(frozen=True, slots=True)
class Credentials:
    """One credential pair, Basic or OAuth2 (its secrets never show in a repr)."""

    basic: tuple[str, str] | None = field(default=None, repr=False)
    #: ``(client_id, client_secret, token_url)``; ``token_url`` ``None``: Sendcloud's.
    oauth2: tuple[str, str, str | None] | None = field(default=None, repr=False)

    def auth(self, *, token_url: str | None = None) -> Auth:
        """The SDK's credentials (``token_url`` overrides the pair's own token endpoint)."""
        if self.basic is not None:
            return BasicAuth(*self.basic)
        assert self.oauth2 is not None
        client_id, client_secret, own_token_url = self.oauth2
        return oauth2(client_id, client_secret, token_url or own_token_url)


def env_value(env: Mapping[str, str], name: str) -> str | None:
    """The variable's value; ``None`` when it is unset or empty."""
    value = env.get(name)
    return value if value else None


def _pair(
    env: Mapping[str, str], first: str, second: str
) -> tuple[str, str] | Literal["none", "partial"]:
    a, b = env_value(env, first), env_value(env, second)
    if a is not None and b is not None:
        return a, b
    return "none" if a is None and b is None else "partial"


def credentials_from_env(env: Mapping[str, str]) -> Credentials | None:
    """The credentials the environment names (``None``: none); ``UsageError`` if unusable."""
    basic = _pair(env, ENV_PUBLIC_KEY, ENV_SECRET_KEY)
    oauth = _pair(env, ENV_CLIENT_ID, ENV_CLIENT_SECRET)
    if basic != "none" and oauth != "none":
        raise UsageError(
            f"both Basic ({ENV_PUBLIC_KEY}/{ENV_SECRET_KEY}) and OAuth2 "
            f"({ENV_CLIENT_ID}/{ENV_CLIENT_SECRET}) credentials are set; unset one pair"
        )
    for state, names in (
        (basic, (ENV_PUBLIC_KEY, ENV_SECRET_KEY)),
        (oauth, (ENV_CLIENT_ID, ENV_CLIENT_SECRET)),
    ):
        if state == "partial":
            missing = names[1] if env_value(env, names[0]) else names[0]
            present = names[0] if missing == names[1] else names[1]
            raise UsageError(f"{missing} is not set (it goes with {present})")
    if isinstance(basic, tuple):
        credentials = Credentials(basic=basic)
    elif isinstance(oauth, tuple):
        credentials = Credentials(oauth2=(*oauth, env_value(env, ENV_TOKEN_URL)))
    else:
        return None
    try:
        credentials.auth()  # the credentials' own checks (the token URL)
    except InvalidInputError as exc:
        raise UsageError(f"unusable credentials in the environment: {exc}") from None
    return credentials


def command_credentials(env: Mapping[str, str], *, fake: bool) -> tuple[Credentials | None, str]:
    """The credentials and base URL of a one-account command; ``UsageError`` if unusable.

    With ``--fake`` (``fake``) the credentials may be ``None`` (the environment names
    none: the fake's own are used, see ``clients.auth_for``) and the base URL is
    ``FAKE_SOURCE``, the name checkpoints give the fake's data.
    """
    credentials = credentials_from_env(env)
    if fake:
        return credentials, FAKE_SOURCE
    url = base_url(env_value(env, ENV_BASE_URL), ENV_BASE_URL)
    if credentials is None:
        raise UsageError(
            f"no credentials: set {ENV_PUBLIC_KEY} and {ENV_SECRET_KEY} (Basic) or "
            f"{ENV_CLIENT_ID} and {ENV_CLIENT_SECRET} (OAuth2), or use --fake"
        )
    return credentials, url


def oauth2(client_id: str, client_secret: str, token_url: str | None) -> Auth:
    """OAuth2 client credentials, with Sendcloud's token endpoint unless ``token_url``."""
    if token_url is None:
        return OAuth2ClientCredentials(client_id, client_secret)
    return OAuth2ClientCredentials(client_id, client_secret, token_url=token_url)


def base_url(value: str | None, name: str) -> str:
    """``value`` as a checked, normalised base URL (Sendcloud's when ``None``)."""
    if value is None:
        return DEFAULT_BASE_URL
    try:
        return str(normalize_base_url(value, name=name))
    except InvalidInputError as exc:
        raise UsageError(str(exc)) from None
