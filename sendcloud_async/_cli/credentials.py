"""Credentials and the API address from the environment (never from the command line)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from .._auth import Auth, BasicAuth
from .._client import DEFAULT_BASE_URL, normalize_base_url
from .._errors import InvalidInputError
from .._oauth2 import OAuth2ClientCredentials
from .common import (
    ENV_BASE_URL,
    ENV_CLIENT_ID,
    ENV_CLIENT_SECRET,
    ENV_PUBLIC_KEY,
    ENV_SECRET_KEY,
    ENV_TOKEN_URL,
    UsageError,
)

__all__ = ["auth_from_env", "base_url", "env_value", "oauth2"]


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


def auth_from_env(env: Mapping[str, str]) -> tuple[Auth, str]:
    """The credentials and base URL the environment names; ``UsageError`` if unusable."""
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
    url = base_url(env_value(env, ENV_BASE_URL), ENV_BASE_URL)
    try:
        if isinstance(basic, tuple):
            return BasicAuth(*basic), url
        if isinstance(oauth, tuple):
            return oauth2(oauth[0], oauth[1], env_value(env, ENV_TOKEN_URL)), url
    except InvalidInputError as exc:
        raise UsageError(f"unusable credentials in the environment: {exc}") from None
    raise UsageError(
        f"no credentials: set {ENV_PUBLIC_KEY} and {ENV_SECRET_KEY} (Basic) or "
        f"{ENV_CLIENT_ID} and {ENV_CLIENT_SECRET} (OAuth2), or use --fake"
    )


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
