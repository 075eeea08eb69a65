"""The accounts file: one ``[accounts.NAME]`` TOML table per account, checked before use."""

from __future__ import annotations

import stat
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from .. import _validate as check
from .._auth import Auth
from .._errors import InvalidInputError
from .._validate import ACCOUNT_NAME
from .common import ENV_BASE_URL, UsageError
from .credentials import Credentials, base_url, env_value

__all__ = ["Account", "load_accounts", "readable_by_others"]

_ACCOUNT_KEYS: Final = frozenset(
    {
        "public_key",
        "secret_key",
        "client_id",
        "client_secret",
        "token_url",
        "base_url",
        "integration",
    }
)


@dataclass(frozen=True, slots=True)
class Account:
    """One ``[accounts.NAME]`` table of an accounts file (its secrets never show in a repr)."""

    name: str
    base_url: str
    integration_id: int | None
    basic: tuple[str, str] | None = field(default=None, repr=False)
    oauth2: tuple[str, str, str | None] | None = field(default=None, repr=False)

    @property
    def credentials(self) -> Credentials:
        """The account's credential pair."""
        return Credentials(basic=self.basic, oauth2=self.oauth2)

    def auth(self, *, token_url: str | None = None) -> Auth:
        """Credentials for this account (``token_url`` overrides the file's)."""
        return self.credentials.auth(token_url=token_url)


def open_accounts(path: Path, env: Mapping[str, str], warn: Callable[[str], None]) -> list[Account]:
    """``load_accounts``, warning (as ssh does for keys) when others may read the file."""
    accounts = load_accounts(path, env)
    mode = readable_by_others(path)
    if mode is not None:
        warn(
            f"the accounts file {path} holds secrets but others may read it "
            f"(mode {mode:04o}); run: chmod 600 {path}"
        )
    return accounts


def load_accounts(path: Path, env: Mapping[str, str]) -> list[Account]:
    """Read and check an accounts file; ``UsageError`` with a one-line reason if unusable."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the accounts file {path}: {exc.strerror or exc}") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"the accounts file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"the accounts file {path} is not valid TOML: {exc}") from None
    extra = sorted(set(doc) - {"accounts"})
    if extra:
        raise UsageError(
            f"the accounts file {path} has unknown top-level keys: {', '.join(extra)} "
            "(expected only [accounts.NAME] tables)"
        )
    tables = doc.get("accounts")
    if not isinstance(tables, dict) or not tables:
        raise UsageError(f"the accounts file {path} has no [accounts.NAME] tables")
    default_base_url = env_value(env, ENV_BASE_URL)
    accounts: list[Account] = []
    seen: dict[str, str] = {}
    for name, table in tables.items():
        where = f"{path}: account {name!r}"
        if not ACCOUNT_NAME.fullmatch(name):  # the one rule: it also names Redis keys
            raise UsageError(
                f"{where}: a name may hold only letters, digits, '.', '_' and '-' "
                "(it names the output file)"
            )
        if name.lower() in seen:
            raise UsageError(f"{where}: the name is used twice (also as {seen[name.lower()]!r})")
        seen[name.lower()] = name
        accounts.append(_account(name, table, where, default_base_url))
    return accounts


def readable_by_others(path: Path) -> int | None:
    """The file's permission bits if its group or others may read or write it (as ssh
    checks private keys), else ``None`` (also on systems without POSIX permissions)."""
    if sys.platform == "win32":
        return None
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    return mode if mode & 0o077 else None


def _account(name: str, table: object, where: str, default_base_url: str | None) -> Account:
    if not isinstance(table, dict):
        raise UsageError(f"{where}: must be a table ([accounts.{name}])")
    unknown = sorted(set(table) - _ACCOUNT_KEYS)
    if unknown:
        raise UsageError(
            f"{where}: unknown keys {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(_ACCOUNT_KEYS))})"
        )
    for key, value in table.items():
        if key != "integration" and (not isinstance(value, str) or not value):
            raise UsageError(f"{where}: {key} must be a non-empty string")
    has_basic = "public_key" in table or "secret_key" in table
    has_oauth = "client_id" in table or "client_secret" in table
    if has_basic and has_oauth:
        raise UsageError(
            f"{where}: give public_key/secret_key or client_id/client_secret, not both"
        )
    if not has_basic and not has_oauth:
        raise UsageError(
            f"{where}: no credentials (public_key/secret_key or client_id/client_secret)"
        )
    pair = ("public_key", "secret_key") if has_basic else ("client_id", "client_secret")
    for key in pair:
        if key not in table:
            other = pair[1] if key == pair[0] else pair[0]
            raise UsageError(f"{where}: {key} is missing (it goes with {other})")
    if has_basic and "token_url" in table:
        raise UsageError(f"{where}: token_url only goes with client_id/client_secret")
    integration = table.get("integration")
    try:
        if integration is not None:
            check.integration_id(integration, "integration")
        account = Account(
            name=name,
            base_url=base_url(table.get("base_url", default_base_url), "base_url"),
            integration_id=integration,
            basic=(table["public_key"], table["secret_key"]) if has_basic else None,
            oauth2=(table["client_id"], table["client_secret"], table.get("token_url"))
            if has_oauth
            else None,
        )
        account.auth()  # the credentials' own checks (the token URL)
    except (InvalidInputError, UsageError) as exc:
        raise UsageError(f"{where}: {exc}") from None
    return account
