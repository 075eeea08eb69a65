"""Checks of caller input against what the spec allows, done before anything is sent.

Each function returns the normalised value or raises ``InvalidInputError``
(a ``ValueError`` and a ``SendcloudError``) with a sentence naming the argument.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, TypeVar

import msgspec
from yarl import URL

from ._errors import InvalidInputError
from ._models import ShopOrderStatusInput, StatusMappingEntry, StatusTranslation

FEEDBACK_TYPES: Final = ("eager", "delayed", "none")
LANGUAGES: Final = ("en-us", "en-gb", "fr-fr", "de-de", "nl-nl", "es-es", "it-it")
STATUS_CATEGORIES: Final = ("READY_TO_SEND", "IN_TRANSIT", "DELIVERED", "CANCEL")
MAX_SHOP_NAME: Final = 250
MAX_TRANSLATIONS: Final = 7

_T = TypeVar("_T")


def _type_name(value: object) -> str:
    return type(value).__name__


def integration_id(value: object, name: str = "integration_id") -> int:
    """A positive integer id."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be an int, not {_type_name(value)}")
    if value < 1:
        raise InvalidInputError(f"{name} must be 1 or more, got {value}")
    return value


def page_size(value: object, *, required: bool = False) -> int | None:
    """``None`` (the server's default, unless ``required``) or an int in 1..100."""
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"page_size must be an int, not {_type_name(value)}")
    if not 1 <= value <= 100:
        raise InvalidInputError(f"page_size must be between 1 and 100, got {value}")
    return value


def required_page_size(value: object) -> int:
    """An int in 1..100 (a watch needs to know its page size)."""
    size = page_size(value, required=True)
    assert size is not None
    return size


def non_empty_str(value: object, name: str, *, max_len: int | None = None) -> str:
    """A non-empty string, at most ``max_len`` characters."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a str, not {_type_name(value)}")
    if not value:
        raise InvalidInputError(f"{name} must not be empty")
    if max_len is not None and len(value) > max_len:
        raise InvalidInputError(f"{name} must be at most {max_len} characters, got {len(value)}")
    return value


def boolean(value: object, name: str) -> bool:
    """A real ``bool`` (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise InvalidInputError(f"{name} must be a bool, not {_type_name(value)}")
    return value


def callback(value: _T, name: str) -> _T:
    """Something to call: a function, a bound method, an object with ``__call__``."""
    if not callable(value):
        raise InvalidInputError(f"{name} must be a callable, not {_type_name(value)}")
    return value


def choice(value: object, name: str, allowed: Sequence[str]) -> str:
    """One of ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise InvalidInputError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def string_list(value: object, name: str) -> list[str]:
    """A list (or tuple) of non-empty strings."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidInputError(f"{name} must be a list of str, not {_type_name(value)}")
    out = []
    for i, item in enumerate(value):
        out.append(non_empty_str(item, f"{name}[{i}]"))
    return out


def aware_datetime(value: object, name: str) -> datetime:
    """A timezone-aware datetime."""
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{name} must be a datetime, not {_type_name(value)}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise InvalidInputError(f"{name} must be an aware datetime (with a UTC offset)")
    return value


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` names this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host is None:
        return False
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def http_url(value: object, name: str, *, credentials_hint: str) -> URL:
    """An absolute http(s) URL without user info; plain http only for loopback hosts.

    Credentials never travel unencrypted over a network, and the message never
    repeats a password that the URL carried.
    """
    if not isinstance(value, str | URL):
        raise InvalidInputError(f"{name} must be a str or yarl.URL, not {_type_name(value)}")
    try:
        url = URL(value) if isinstance(value, str) else value
    except ValueError as exc:
        raise InvalidInputError(f"{name} is not a valid URL: {exc}") from None
    if url.user is not None or url.password is not None:
        raise InvalidInputError(f"{name} must not contain credentials; {credentials_hint}")
    if not url.is_absolute() or url.scheme not in ("http", "https") or not url.host:
        raise InvalidInputError(
            f"{name} must be an absolute http(s) URL (https unless the host is loopback), "
            f"got {str(url)!r}"
        )
    if url.scheme == "http" and not is_loopback(url.host):
        raise InvalidInputError(
            f"{name} must use https (plain http is only allowed for loopback hosts)"
        )
    return url


def positive_seconds(value: object, name: str) -> float:
    """A finite number of seconds above 0 (not a bool)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not value > 0
        or not math.isfinite(value)
    ):
        raise InvalidInputError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def optional_str(value: object, name: str) -> str | None:
    """``None`` or a string."""
    if value is not None and not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a str or None, not {_type_name(value)}")
    return value


def shop_order_statuses(statuses: object, *, allow_empty: bool) -> list[ShopOrderStatusInput]:
    """Statuses for ``replace``: Structs or dicts, unique ``external_id``s and languages."""
    if isinstance(statuses, str | bytes | Mapping) or not isinstance(statuses, Sequence):
        raise InvalidInputError(
            f"statuses must be a list of ShopOrderStatusInput or dicts, not {_type_name(statuses)}"
        )
    if not statuses and not allow_empty:
        raise InvalidInputError(
            "replace() with no statuses would delete every shop order status of the "
            "integration; pass allow_empty=True if that is what you want"
        )
    out: list[ShopOrderStatusInput] = []
    seen: set[str] = set()
    for i, item in enumerate(statuses):
        where = f"statuses[{i}]"
        status = _to_status_input(item, where)
        non_empty_str(status.external_id, f"{where}.external_id")
        if status.external_id in seen:
            raise InvalidInputError(f"{where}: duplicate external_id {status.external_id!r}")
        seen.add(status.external_id)
        if not 1 <= len(status.translations) <= MAX_TRANSLATIONS:
            raise InvalidInputError(
                f"{where}.translations must hold 1 to {MAX_TRANSLATIONS} translations, "
                f"got {len(status.translations)}"
            )
        languages: set[str] = set()
        for j, tr in enumerate(status.translations):
            non_empty_str(tr.status, f"{where}.translations[{j}].status")
            choice(tr.language, f"{where}.translations[{j}].language", LANGUAGES)
            if tr.language in languages:
                raise InvalidInputError(
                    f"{where}.translations: language {tr.language!r} appears twice"
                )
            languages.add(tr.language)
        out.append(status)
    return out


def _to_status_input(item: object, where: str) -> ShopOrderStatusInput:
    if isinstance(item, ShopOrderStatusInput):
        translations = [
            tr if isinstance(tr, StatusTranslation) else _convert(tr, StatusTranslation, where)
            for tr in item.translations
        ]
        return ShopOrderStatusInput(item.external_id, translations)
    if isinstance(item, Mapping):
        return _convert(item, ShopOrderStatusInput, where)
    raise InvalidInputError(
        f"{where} must be a ShopOrderStatusInput or a dict, not {_type_name(item)}"
    )


def optional_struct(value: object, typ: type[_T], name: str) -> _T | None:
    """``None``, an instance of the Struct ``typ``, or a dict converted into one."""
    if value is None or isinstance(value, typ):
        return value
    if isinstance(value, Mapping):
        return _convert(value, typ, name)
    raise InvalidInputError(f"{name} must be a {typ.__name__}, a dict or None")


def optional_non_negative_int(value: object, name: str) -> int | None:
    """``None`` or an int of 0 or more (not a bool)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise InvalidInputError(f"{name} must be an int of 0 or more, or None")
    return value


def _convert(item: object, typ: type[_T], where: str) -> _T:
    try:
        return msgspec.convert(item, typ)
    except msgspec.ValidationError as exc:
        raise InvalidInputError(f"{where}: {exc}") from None


def status_mapping(mapping: object) -> list[StatusMappingEntry]:
    """A mapping for ``set_mapping``: exactly one entry per status category, in canonical order."""
    entries: dict[str, str | None] = {}
    if isinstance(mapping, Mapping):
        items: list[tuple[Any, Any]] = list(mapping.items())
    elif isinstance(mapping, Sequence) and not isinstance(mapping, str | bytes):
        items = []
        for i, entry in enumerate(mapping):
            if not isinstance(entry, StatusMappingEntry):
                raise InvalidInputError(
                    f"mapping[{i}] must be a StatusMappingEntry, not {_type_name(entry)}"
                )
            items.append((entry.status_category, entry.external_id))
    else:
        raise InvalidInputError(
            "mapping must be a dict {category: external_id or None} or a list of "
            f"StatusMappingEntry, not {_type_name(mapping)}"
        )
    for category, external_id in items:
        choice(category, "status category", STATUS_CATEGORIES)
        if category in entries:
            raise InvalidInputError(f"status category {category!r} appears more than once")
        if external_id is not None:
            non_empty_str(external_id, f"external_id of {category}")
        entries[category] = external_id
    missing = [c for c in STATUS_CATEGORIES if c not in entries]
    if missing:
        raise InvalidInputError(
            f"mapping must name every status category; missing {', '.join(missing)} "
            "(map a category to None to leave it unmapped)"
        )
    return [StatusMappingEntry(c, entries[c]) for c in STATUS_CATEGORIES]


def positive_int(value: object, name: str) -> int:
    """An int of 1 or more (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be an int of 1 or more, got {value!r}")
    return value


def non_negative_int(value: object, name: str) -> int:
    """An int of 0 or more (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"{name} must be an int of 0 or more, got {value!r}")
    return value


#: An account's name in an accounts file: it names files, Redis keys and streams.
ACCOUNT_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def account_name(value: object, name: str = "account name") -> str:
    """1 to 100 letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a str, not {_type_name(value)}")
    if not ACCOUNT_NAME.fullmatch(value):
        raise InvalidInputError(
            f"{name} {value[:120]!r} is not allowed: use 1 to 100 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    return value


def optional_session(value: object) -> None:
    """``None`` or an ``aiohttp.ClientSession`` (a session to borrow)."""
    if value is None:
        return
    import aiohttp  # here, not at the top: importing the SDK must not load aiohttp

    if not isinstance(value, aiohttp.ClientSession):
        raise InvalidInputError(
            f"session must be an aiohttp.ClientSession, not {_type_name(value)}"
        )


def normalize_base_url(value: str | URL, *, name: str = "base_url") -> URL:
    """An absolute http(s) URL without user info, query or trailing slash.

    Plain ``http`` is only allowed for loopback hosts (tests, FakeSendcloud):
    credentials never travel unencrypted over a network.
    """
    url = http_url(value, name, credentials_hint="pass them as auth=")
    if url.query_string or url.fragment:
        raise InvalidInputError(f"{name} must not have a query or fragment")
    path = url.raw_path.rstrip("/")
    return url.with_path(path, encoded=True) if path != url.raw_path else url
