"""Permanent Redis errors stop with one clear line; outages are waited out.

A ``redis-server`` with ``requirepass`` and 4 databases; every Redis piece (the
watch store and coordinator, ``RedisState``, the webhook ledger, ``logs watch
--redis``) meets the same refusals and must say what to fix, never "unreachable".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any

import pytest

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud
from tests._log_secrets import everything_shown
from tests.functional.test_cli import base_env, run

from .conftest import RedisServer, free_port, redis_binary

PASSWORD = "s3cret-Pa55word"
WRONG = "not-the-Pa55word"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A ``redis-server`` that wants a password and has 4 databases (0 to 3)."""
    server = RedisServer(
        redis_binary(),
        free_port(),
        tmp_path_factory.mktemp("secured-redis"),
        extra=("--requirepass", PASSWORD, "--databases", "4"),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _url(server: RedisServer, auth: str = "", db: str = "0") -> str:
    return f"redis://{auth}127.0.0.1:{server.port}/{db}"


#: (URL's credentials, database) -> (reason, what the message says)
REFUSALS = {
    "no password": ("", "0", "authentication", "Redis wants a password and the URL gives none"),
    "wrong password": (f":{WRONG}@", "0", "authentication", "refused the URL's username or"),
    "unknown user": (f"bob:{WRONG}@", "0", "authentication", "refused the URL's username or"),
    "no such database": (f":{PASSWORD}@", "7", "database", "names a database the server does"),
}


def _check_message(exc: BaseException, needle: str) -> None:
    text = str(exc)
    assert needle in text
    assert "unreachable" not in text
    assert PASSWORD not in text
    assert WRONG not in text
    assert "\n" not in text


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_the_watch_store_refuses_to_retry_what_no_retry_fixes(
    secured: RedisServer, case: str
) -> None:
    """Every call raises StateConfigurationError (not StateUnavailableError) with the reason."""
    from sendcloud_async.redis import RedisWatchStore, StateConfigurationError

    auth, db, reason, needle = REFUSALS[case]
    async with RedisWatchStore.from_url(_url(secured, auth, db), lease=1.0) as store:
        for call in (store.check(), store.claim(["acme"]), store.heartbeat()):
            started = time.monotonic()
            with pytest.raises(StateConfigurationError) as caught:
                await call
            assert time.monotonic() - started < 1.0
            assert caught.value.reason == reason
            assert not isinstance(caught.value, sc.StateUnavailableError)
            _check_message(caught.value, needle)


@pytest.mark.parametrize("case", ["no password", "wrong password", "no such database"])
async def test_the_coordinator_stops_and_raises_within_5_s(
    secured: RedisServer, namespace: str, case: str
) -> None:
    """``run()`` ends by itself with StateConfigurationError; no watch started, no event."""
    from sendcloud_async.redis import (
        RedisWatchCoordinator,
        RedisWatchStore,
        StateConfigurationError,
        source_watch,
    )

    started: list[str] = []

    async def source(account: str, state: bytes | None) -> AsyncIterator[tuple[bytes, list[bytes]]]:
        started.append(account)
        yield b"0", []

    auth, db, reason, needle = REFUSALS[case]
    events: list[Any] = []
    async with RedisWatchStore.from_url(
        _url(secured, auth, db), namespace=namespace, lease=1.0
    ) as store:
        coordinator = RedisWatchCoordinator(
            store, ["a", "b"], source_watch(source), on_event=events.append
        )
        begun = time.monotonic()
        with pytest.raises(StateConfigurationError) as caught:
            await asyncio.wait_for(coordinator.run(), 5)
        assert time.monotonic() - begun < 5
    assert caught.value.reason == reason
    _check_message(caught.value, needle)
    assert started == []
    assert events == []


async def test_a_permission_the_user_lacks_stops_the_coordinator(
    secured: RedisServer, namespace: str
) -> None:
    """An ACL user without EVALSHA: StateConfigurationError, reason "permission"."""
    import redis.asyncio

    from sendcloud_async.redis import (
        RedisWatchCoordinator,
        RedisWatchStore,
        StateConfigurationError,
        source_watch,
    )

    admin = redis.asyncio.Redis.from_url(_url(secured, f":{PASSWORD}@"))
    try:
        await admin.acl_setuser(
            "reader",
            enabled=True,
            passwords=[f"+{PASSWORD}"],
            keys=["*"],
            commands=["+@read", "+ping", "+hello"],
        )
        async with RedisWatchStore.from_url(
            _url(secured, f"reader:{PASSWORD}@"), namespace=namespace, lease=1.0
        ) as store:
            await store.check()  # PING is allowed: the credentials are right

            async def source(
                account: str, state: bytes | None
            ) -> AsyncIterator[tuple[bytes, list[bytes]]]:
                yield b"0", []

            coordinator = RedisWatchCoordinator(store, ["a"], source_watch(source))
            with pytest.raises(StateConfigurationError) as caught:
                await asyncio.wait_for(coordinator.run(), 5)
        assert caught.value.reason == "permission"
        _check_message(caught.value, "may not run a command the SDK needs")
    finally:
        await admin.acl_deluser("reader")
        await admin.aclose()


@pytest.mark.parametrize("case", ["no password", "wrong password", "no such database"])
async def test_redis_state_does_not_fall_back_on_a_refusal(
    secured: RedisServer, fake: FakeSendcloud, case: str
) -> None:
    """RedisState (on_unavailable="local") raises the refusal through the request, sends
    nothing to Sendcloud, and does not count Redis as down."""
    from sendcloud_async.redis import RedisState, StateConfigurationError

    auth, db, reason, needle = REFUSALS[case]
    async with (
        RedisState.from_url(_url(secured, auth, db)) as state,
        sc.AccountPool(base_url=fake.base_url, rate_limit=sc.RateLimits(), state=state) as pool,
    ):
        client = pool.client(fake.basic_auth)
        with pytest.raises(StateConfigurationError) as caught:
            await client.integrations.list()
        assert state.available
    assert caught.value.reason == reason
    _check_message(caught.value, needle)
    assert fake.requests == []


async def test_the_webhook_ledger_raises_a_refusal(secured: RedisServer) -> None:
    """RedisEventLedger goes through RedisState: the same StateConfigurationError."""
    from sendcloud_async import webhooks
    from sendcloud_async.redis import RedisEventLedger, RedisState, StateConfigurationError

    body = (
        b'{"action": "integration_connected", "timestamp": 1733059200000, "integration": {"id": 1}}'
    )
    event = webhooks.parse_event(body, signature=_sign(body), secret="secret")
    async with RedisState.from_url(_url(secured, f":{WRONG}@")) as state:
        ledger = RedisEventLedger(state)
        with pytest.raises(StateConfigurationError, match="refused the URL's username"):
            await ledger.admit(event)


def _sign(body: bytes) -> str:
    import hashlib
    import hmac

    return hmac.new(b"secret", body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("redis://127.0.0.1:6379/abc", "database must be a number"),
        ("redis://127.0.0.1:6379/-1", "database must be a number"),
        ("redis://127.0.0.1:6379/1/2", "database must be a number"),
        ("redis://127.0.0.1:6379/0?db=x", "database must be a number"),
        ("redis://127.0.0.1:port/0", "port must be a number"),
        ("http://127.0.0.1:6379/0", "must start with redis://"),
    ],
)
def test_a_url_redis_py_would_misread_is_refused_before_anything_is_sent(
    url: str, needle: str
) -> None:
    """``/abc`` would silently be database 0: every from_url refuses it (InvalidInputError)."""
    from sendcloud_async.redis import RedisState, RedisWatchStore

    redis_binary()
    for make in (RedisWatchStore.from_url, RedisState.from_url):
        with pytest.raises(sc.InvalidInputError, match=needle):
            make(url)


#: Passwords with a character that ends the host part early, not percent-encoded.
EARLY_ENDS = {
    "slash": ("redis://:8/kQ2xSlashSecret@127.0.0.1:6379/0", "kQ2xSlashSecret"),
    "slash and user": ("redis://app:ab/cdUserSecret@127.0.0.1:6379/3", "cdUserSecret"),
    "question mark": ("redis://:ab?cdQuerySecret@127.0.0.1:6379/0", "cdQuerySecret"),
    "hash": ("rediss://:ab#cdFragmentSecret@127.0.0.1:6379/0", "cdFragmentSecret"),
    "unix socket": ("unix://:ab/cdUnixSecret@/tmp/redis.sock?db=0", "cdUnixSecret"),
}


@pytest.mark.parametrize("case", list(EARLY_ENDS))
def test_a_password_that_ends_the_host_early_is_refused_quoting_nothing(case: str) -> None:
    """``redis://:8/kQ2x…@host/0`` would have its password quoted as the "database": every
    from_url refuses it, saying to percent-encode, and quotes no part of the URL."""
    from sendcloud_async.redis import RedisConnection, RedisState, RedisWatchStore

    redis_binary()
    url, secret = EARLY_ENDS[case]
    for make in (RedisConnection.from_url, RedisWatchStore.from_url, RedisState.from_url):
        with pytest.raises(sc.InvalidInputError, match="percent-encode the password") as caught:
            make(url)
        shown = str(caught.value) + repr(caught.value) + repr(caught.value.args)
        assert secret not in shown
        assert "127.0.0.1" not in shown
        assert "\n" not in str(caught.value)
        assert caught.value.__cause__ is None


async def test_a_percent_encoded_password_with_a_slash_is_used(secured: RedisServer) -> None:
    """The refusal's advice works: the same password percent-encoded authenticates."""
    import urllib.parse

    import redis.asyncio

    from sendcloud_async.redis import RedisConnection

    password = "8/kQ2x?Generated#Secret"
    admin = redis.asyncio.Redis.from_url(_url(secured, f":{PASSWORD}@"))
    try:
        await admin.acl_setuser(
            "slashed", enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+ping"]
        )
        encoded = urllib.parse.quote(password, safe="")
        async with RedisConnection.from_url(_url(secured, f"slashed:{encoded}@")) as conn:
            assert await conn.call(lambda: conn.client.ping()) is True
    finally:
        await admin.acl_deluser("slashed")
        await admin.aclose()


async def _raised(call: Awaitable[object]) -> BaseException:
    """What ``call`` raised, caught in a frame that holds no URL (nor does the test's)."""
    try:
        await call
    except BaseException as exc:
        return exc
    raise AssertionError("the call did not raise")


@pytest.mark.parametrize("case", ["wrong password", "unknown user", "no such database"])
async def test_no_frame_or_chained_error_of_a_refusal_holds_the_password(
    secured: RedisServer, case: str
) -> None:
    """redis-py's frames hold the password it sent (``auth_args``): the refusal chains its
    error without them, so error trackers recording frame locals store no password."""
    from sendcloud_async.redis import RedisConnection, RedisWatchStore, StateConfigurationError

    auth, db, reason, _ = REFUSALS[case]
    async with RedisConnection.from_url(_url(secured, auth, db)) as conn:
        direct = await _raised(conn.call(lambda: conn.client.ping()))
    async with RedisWatchStore.from_url(_url(secured, auth, db), lease=1.0) as store:
        through_store = await _raised(store.check())
    for exc in (direct, through_store):
        assert isinstance(exc, StateConfigurationError)
        assert exc.reason == reason
        assert exc.__cause__ is not None  # Redis's own error is still there, as text
        shown = everything_shown(exc)
        assert WRONG not in shown
        assert PASSWORD not in shown


# -- the command line ------------------------------------------------------------------------


def _accounts_file(tmp_path: Path, fake: FakeSendcloud) -> Path:
    fake.add_account("pk-0", "sk-0")
    path = tmp_path / "accounts.toml"
    path.write_text(
        f'[accounts.shop-0]\npublic_key = "pk-0"\nsecret_key = "sk-0"\n'
        f'base_url = "{fake.base_url}"\n',
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("case", "code"),
    [("no password", 1), ("wrong password", 1), ("unknown user", 1), ("no such database", 2)],
)
async def test_logs_watch_stops_with_one_line_on_a_refusal(
    secured: RedisServer, fake: FakeSendcloud, tmp_path: Path, case: str, code: int
) -> None:
    """Auth refused: exit 1; a database the server lacks: exit 2 (usage); one line, in 5 s,
    nothing sent to Sendcloud, no secret."""
    auth, db, _, needle = REFUSALS[case]
    accounts = _accounts_file(tmp_path, fake)
    started = time.monotonic()
    result = await run(
        "logs", "watch", "--accounts", str(accounts), "--redis", _url(secured, auth, db),
        env=base_env(),
    )  # fmt: skip
    assert time.monotonic() - started < 5
    assert result.code == code, result.err
    assert len(result.err_lines) == 1, result.err
    assert "error" in result.err_lines[0].lower()
    assert needle in result.err
    assert "unreachable" not in result.err
    assert PASSWORD not in result.err
    assert WRONG not in result.err
    if code == 2:
        assert "--redis: " in result.err
    assert fake.requests == []


@pytest.mark.parametrize(
    ("db", "needle"),
    [("abc", "database must be a number"), ("0?db=one", "database must be a number")],
)
async def test_logs_watch_refuses_a_database_that_is_not_a_number(
    fake: FakeSendcloud, tmp_path: Path, db: str, needle: str
) -> None:
    """``--redis redis://…/abc``: a usage error before Redis is asked (no server here)."""
    accounts = _accounts_file(tmp_path, fake)
    result = await run(
        "logs", "watch", "--accounts", str(accounts),
        "--redis", f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/{db}",
        env=base_env(),
    )  # fmt: skip
    assert result.code == 2, result.err
    assert len(result.err_lines) == 1, result.err
    assert f"--redis: the Redis URL's {needle}" in result.err
    assert PASSWORD not in result.err
    assert fake.requests == []


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_logs_watch_refuses_a_password_that_ends_the_host_early_quoting_nothing(
    fake: FakeSendcloud, tmp_path: Path, log_format: str
) -> None:
    """``--redis redis://:8/kQ2x…@host/0``: a usage error saying to percent-encode the
    password, in one line (also as a JSON line), quoting no part of the URL."""
    accounts = _accounts_file(tmp_path, fake)
    result = await run(
        "--log-format", log_format, "logs", "watch", "--accounts", str(accounts),
        "--redis", f"redis://:8/kQ2xSlashSecret@127.0.0.1:{free_port()}/0",
        env=base_env(),
    )  # fmt: skip
    assert result.code == 2, result.err
    assert len(result.err_lines) == 1, result.err
    assert "--redis: the Redis URL has an '@' after its host" in result.err
    assert "kQ2xSlashSecret" not in result.err + result.out
    assert "127.0.0.1" not in result.err
    assert fake.requests == []


@pytest.mark.parametrize(
    ("kind", "text", "verdict"),
    [
        ("ConnectionError", "Error 111 connecting to 127.0.0.1:6379. Connection refused.", "down"),
        ("TimeoutError", "Timeout reading from 127.0.0.1:6379", "down"),
        ("BusyLoadingError", "Redis is loading the dataset in memory", "down"),
        ("OutOfMemoryError", "command not allowed when used memory > maxmemory", "down"),
        ("AuthenticationError", "invalid username-password pair or user is disabled.", "auth"),
        ("ResponseError", "NOAUTH Authentication required.", "auth"),
        ("ResponseError", "DB index is out of range", "database"),
        ("NoPermissionError", "this user has no permissions to run the evalsha command", "perm"),
        ("ReadOnlyError", "You can't write against a read only replica.", "down"),
        ("ResponseError", "WRONGTYPE Operation against a key holding the wrong kind", "bug"),
        ("DataError", "Invalid input of type: dict", "bug"),
    ],
)
def test_one_function_tells_a_permanent_error_from_an_outage(
    kind: str, text: str, verdict: str
) -> None:
    """``redis_failure``: outages -> StateUnavailableError, refusals -> StateConfigurationError
    with the reason, anything else (a bug) -> None, so that it propagates as it is."""
    from redis import exceptions

    from sendcloud_async._redis._rules import redis_failure

    redis_binary()
    exc = getattr(exceptions, kind)(text)  # a redis-py exception, as redis-py raises it
    failure = redis_failure(exc)
    if verdict == "down":
        assert isinstance(failure, sc.StateUnavailableError)
        assert kind in str(failure)
    elif verdict == "bug":
        assert failure is None
    else:
        assert isinstance(failure, sc.StateConfigurationError)
        reasons = {"auth": "authentication", "database": "database", "perm": "permission"}
        assert failure.reason == reasons[verdict]


async def test_a_log_watcher_on_a_refusing_redis_stops_instead_of_retrying(
    secured: RedisServer, fake: FakeSendcloud
) -> None:
    """LogWatcher over a pool whose RedisState is refused: run() raises the refusal at once."""
    from sendcloud_async.redis import RedisState, StateConfigurationError

    auth, db, _reason, needle = REFUSALS["wrong password"]
    seen: list[sc.WatchEvent] = []
    async with (
        RedisState.from_url(_url(secured, auth, db)) as state,
        sc.AccountPool(base_url=fake.base_url, rate_limit=sc.RateLimits(), state=state) as pool,
    ):
        watcher = sc.LogWatcher(
            pool,
            {"a": fake.basic_auth, "b": fake.basic_auth},
            store=sc.MemoryWatchStore(),
            backoff=0.01,
        )
        with pytest.raises(StateConfigurationError) as caught:
            await asyncio.wait_for(watcher.run(seen.append), 5)
    _check_message(caught.value, needle)
    assert not any(isinstance(e, sc.AccountFailed) for e in seen)  # not retried as a failure
    assert fake.requests == []
