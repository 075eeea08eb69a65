"""One options value: the client and the pool take the same options; replace keeps the rest."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import aiohttp
import pytest
from yarl import URL

import sendcloud_async as sc
from sendcloud_async import _defaults
from sendcloud_async._cli import build_parser
from sendcloud_async._options import ClientOptions
from sendcloud_async._redis._watch import log_watcher_watch, logs_watch
from sendcloud_async._resources.logs import Logs
from sendcloud_async._watchers import LogWatcher

AUTH = sc.BasicAuth("public", "secret-value-xyz")

#: A value other than the default for every option, to see each one travel.
NON_DEFAULTS: dict[str, Any] = {
    "base_url": "http://127.0.0.1:9/api/v3",
    "timeout": 7.5,
    "max_retries": 5,
    "rate_limit": sc.RateLimits(),
    "state": sc.MemoryState(),
    "max_response_size": 12_345,
}


def _keywords(function: Any, *, leave_out: tuple[str, ...] = ()) -> dict[str, inspect.Parameter]:
    """The keyword parameters of ``function`` (``self`` and ``leave_out`` left out)."""
    return {
        name: parameter
        for name, parameter in inspect.signature(function).parameters.items()
        if name not in ("self", "cls", *leave_out)
        and parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    }


def test_account_pool_accepts_every_client_option() -> None:
    """Every keyword of SendcloudClient but auth and session is AccountPool's, alike in all."""
    client = _keywords(sc.SendcloudClient.__init__, leave_out=("auth", "session"))
    pool = _keywords(sc.AccountPool.__init__, leave_out=("connections", "session"))
    assert set(client) == set(pool) == set(NON_DEFAULTS)
    for name, parameter in client.items():
        theirs = pool[name]
        assert theirs.kind is inspect.Parameter.KEYWORD_ONLY, name
        assert (theirs.default, theirs.annotation) == (parameter.default, parameter.annotation), (
            name
        )


def test_both_take_the_options_value_keywords() -> None:
    """ClientOptions.create reads exactly the options the two signatures offer."""
    client = _keywords(sc.SendcloudClient.__init__, leave_out=("auth", "session"))
    assert set(_keywords(ClientOptions.create)) == set(client)


def test_defaults_come_from_one_place() -> None:
    """The signatures' defaults are the values of ``_defaults``."""
    client = _keywords(sc.SendcloudClient.__init__)
    assert client["base_url"].default == _defaults.DEFAULT_BASE_URL
    assert client["timeout"].default == _defaults.DEFAULT_TIMEOUT
    assert client["max_retries"].default == _defaults.DEFAULT_MAX_RETRIES
    assert client["max_response_size"].default == _defaults.DEFAULT_MAX_RESPONSE_SIZE


async def test_every_pool_client_gets_every_pool_option() -> None:
    """AccountPool(...) gives each client the options it was given, max_response_size too."""
    async with sc.AccountPool(**NON_DEFAULTS) as pool:
        pooled = pool.client(AUTH)._transport.config
    alone = sc.SendcloudClient(AUTH, **NON_DEFAULTS)._transport.config
    assert pooled == alone
    assert pooled.max_response_size == 12_345
    assert pooled.timeout == aiohttp.ClientTimeout(total=7.5)
    assert pooled.max_retries == 5
    assert pooled.base_url == URL("http://127.0.0.1:9/api/v3")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("base_url", "ftp://example.com"),
        ("timeout", -1),
        ("max_retries", -1),
        ("rate_limit", {"get": 10}),
        ("state", "redis://localhost"),
        ("max_response_size", 0),
    ],
)
def test_a_bad_option_is_refused_alike_by_client_and_pool(name: str, value: object) -> None:
    """The pool checks its options when made, with the client's very sentence."""
    bad: dict[str, Any] = {name: value}
    with pytest.raises(sc.InvalidInputError) as by_client:
        sc.SendcloudClient(AUTH, **bad)
    with pytest.raises(sc.InvalidInputError) as by_pool:
        sc.AccountPool(**bad)
    assert str(by_pool.value) == str(by_client.value)
    assert name in str(by_client.value)


@pytest.mark.parametrize(
    "changes",
    [{"timeout": 2.0}, {"max_retries": 0}, {"timeout": 3, "max_retries": 9}, {}],
    ids=["timeout", "max_retries", "both", "nothing"],
)
def test_with_options_keeps_every_other_option(changes: dict[str, Any]) -> None:
    """with_options changes what it is given and keeps every other field, the account's too."""
    client = sc.SendcloudClient(AUTH, **NON_DEFAULTS)
    before = client._transport.config
    derived = client.with_options(**changes)
    after = derived._transport.config
    changed = {"timeout", "retry"} & {"retry" if k == "max_retries" else k for k in changes}
    for field in dataclasses.fields(ClientOptions):
        if field.name not in changed:
            assert getattr(after, field.name) == getattr(before, field.name), field.name
    if "timeout" in changes:
        assert after.timeout == aiohttp.ClientTimeout(total=float(changes["timeout"]))
    if "max_retries" in changes:
        assert after.max_retries == changes["max_retries"]
        assert after.retry == dataclasses.replace(before.retry, max_retries=after.max_retries)
    assert (after.base, after.origin) == (before.base, before.origin)
    # The account's pieces are shared, not copied.
    assert derived.auth is client.auth
    assert derived._transport._gate is client._transport._gate is not None
    assert derived._transport.flow is client._transport.flow
    assert client._transport.config is before  # the original is untouched


def test_with_options_keeps_a_changed_backoff() -> None:
    """A retry policy's other fields survive a max_retries change (replace, not rebuild)."""
    client = sc.SendcloudClient(AUTH)
    transport = client._transport
    config = transport._config
    transport._config = dataclasses.replace(
        config, retry=dataclasses.replace(config.retry, backoff_base=0.001)
    )
    assert client.with_options(max_retries=7)._transport.config.retry.backoff_base == 0.001


@pytest.mark.parametrize(
    ("changes", "word"),
    [({"timeout": 0}, "timeout"), ({"max_retries": -2}, "max_retries")],
)
def test_with_options_checks_what_it_changes(changes: dict[str, Any], word: str) -> None:
    """A bad value raises InvalidInputError naming it; the client is unchanged."""
    client = sc.SendcloudClient(AUTH)
    before = client._transport.config
    with pytest.raises(sc.InvalidInputError, match=word):
        client.with_options(**changes)
    assert client._transport.config is before


def test_options_are_frozen() -> None:
    """The options value cannot be changed in place (a client's options are shared)."""
    options = sc.SendcloudClient(AUTH)._transport.config
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.timeout = aiohttp.ClientTimeout(total=1)  # type: ignore[misc]


def test_watch_defaults_come_from_one_place() -> None:
    """logs.watch, LogWatcher, the Redis watches and `logs watch` share one set of defaults."""
    expected = {
        "start": _defaults.DEFAULT_WATCH_START,
        "interval": _defaults.DEFAULT_WATCH_INTERVAL,
        "page_size": _defaults.DEFAULT_PAGE_SIZE,
    }
    for function in (Logs.watch, LogWatcher.__init__, logs_watch):
        keywords = _keywords(function)
        found = {name: keywords[name].default for name in expected}
        assert found == expected, function.__qualname__
    assert _keywords(log_watcher_watch)["interval"].default == _defaults.DEFAULT_WATCH_INTERVAL
    assert _keywords(sc.WatchState.initial)["start"].default == _defaults.DEFAULT_WATCH_START
    args = build_parser().parse_args(["logs", "watch", "--out", "logs.jsonl"])
    assert {name: getattr(args, name) for name in expected} == expected
