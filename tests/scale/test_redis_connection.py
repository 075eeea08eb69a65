"""``RedisConnection``: the one owner of the Redis pool every Redis piece borrows.

Against a real ``redis-server``: every piece says ``ClientClosedError`` after
``aclose()`` (never "Redis is unreachable"), a Redis restart costs no error, a full
pool is queued for, one connection serves a ``RedisState``, a ``RedisWatchStore``
and a webhook ledger at once and outlives the pieces it was lent to.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import pytest

import sendcloud_async as sc
from sendcloud_async import webhooks
from sendcloud_async.testing import FakeSendcloud

from .conftest import RedisServer, free_port, redis_binary

if TYPE_CHECKING:
    import redis.asyncio as aioredis

#: Makes one Redis piece over a URL and a namespace; returns it (to close) and a use of it.
PieceFactory = Callable[[str, str], Awaitable[tuple[Any, Callable[[], Awaitable[object]]]]]


def _event(ident: int) -> webhooks.WebhookEvent:
    body = json.dumps(
        {"action": "parcel_status_changed", "timestamp": 1000, "parcel": {"id": ident}}
    ).encode()
    return webhooks.parse_event(body, signature=webhooks.sign(body, "s"), secret="s")


async def _connection(url: str, namespace: str) -> tuple[Any, Callable[[], Awaitable[object]]]:
    from sendcloud_async.redis import RedisConnection

    connection = RedisConnection.from_url(url)
    return connection, lambda: connection.call(connection.client.ping)


async def _state(url: str, namespace: str) -> tuple[Any, Callable[[], Awaitable[object]]]:
    from sendcloud_async.redis import RedisState

    state = RedisState.from_url(url, namespace=namespace, on_unavailable="raise")
    gate = state.gate("account", sc.RateLimits())

    async def use() -> object:
        lease = await gate.acquire("GET")
        gate.release(lease)
        return lease

    return state, use


async def _store(url: str, namespace: str) -> tuple[Any, Callable[[], Awaitable[object]]]:
    from sendcloud_async.redis import RedisWatchStore

    store = RedisWatchStore.from_url(url, namespace=namespace, stream_prefix=f"{namespace}:logs")
    return store, lambda: store.claim(["acme"])


async def _ledger(url: str, namespace: str) -> tuple[Any, Callable[[], Awaitable[object]]]:
    from sendcloud_async.redis import RedisEventLedger, RedisState

    state = RedisState.from_url(url, namespace=namespace)
    ledger = RedisEventLedger(state)
    events = iter(range(1, 1000))
    return state, lambda: ledger.admit(_event(next(events)))


async def _tail(url: str, namespace: str) -> tuple[Any, Callable[[], Awaitable[object]]]:
    from sendcloud_async._redis._tail import StreamTail
    from sendcloud_async.redis import RedisWatchStore

    store = RedisWatchStore.from_url(url, namespace=namespace, stream_prefix=f"{namespace}:logs")
    tail = StreamTail(store, group="g", consumer="c")
    return store, tail.discover


#: Each Redis piece, and what its ClientClosedError names as closed.
PIECES: dict[str, tuple[PieceFactory, str]] = {
    "RedisConnection": (_connection, "RedisConnection"),
    "RedisState": (_state, "RedisState"),
    "RedisWatchStore": (_store, "RedisWatchStore"),
    "RedisEventLedger": (_ledger, "RedisState"),
    "StreamTail": (_tail, "RedisWatchStore"),
}


async def _commands(client: aioredis.Redis) -> int:
    """How many commands the server has run so far (``INFO stats``)."""
    info: Any = await client.info("stats")
    return int(info["total_commands_processed"])


@pytest.mark.parametrize("piece", list(PIECES))
async def test_every_redis_piece_raises_client_closed_after_aclose(
    redis_server: RedisServer,
    redis_client: aioredis.Redis,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
    piece: str,
) -> None:
    """Used after ``aclose()``: ``ClientClosedError`` at once, not "unreachable"; nothing sent."""
    make, name = PIECES[piece]
    words = f"this {name} is closed; create a new one to use it"
    caplog.set_level(logging.INFO, "sendcloud_async")
    owner, use = await make(redis_server.url, namespace)
    await use()  # it works while open
    assert not owner.closed
    await owner.aclose()
    assert owner.closed
    before = await _commands(redis_client)
    for _ in range(2):  # every call, not only the first
        started = time.monotonic()
        with pytest.raises(sc.ClientClosedError) as caught:
            await use()
        assert time.monotonic() - started < 0.5
        assert str(caught.value) == words
        assert not isinstance(caught.value, sc.StateUnavailableError)
    # Only our own INFO reached the server: the closed piece sent nothing.
    assert await _commands(redis_client) == before + 1
    assert not [r for r in caplog.records if "unreachable" in r.getMessage()]
    with pytest.raises(sc.ClientClosedError, match=words):
        async with owner:
            pass
    await owner.aclose()  # idempotent


async def test_a_closed_redis_state_fails_a_request_unsent_and_is_not_taken_for_an_outage(
    fake: FakeSendcloud, redis_server: RedisServer, namespace: str
) -> None:
    """A client over a closed RedisState: ClientClosedError, no request, no local fallback."""
    from sendcloud_async.redis import RedisState

    fake.seed(integrations=1, logs_per_integration=0)
    state = RedisState.from_url(redis_server.url, namespace=namespace)  # on_unavailable="local"
    async with sc.SendcloudClient(
        auth=fake.basic_auth, base_url=fake.base_url, rate_limit=sc.RateLimits(), state=state
    ) as client:
        await client.integrations.list()
        sent = len(fake.requests)
        await state.aclose()
        with pytest.raises(sc.ClientClosedError, match="this RedisState is closed"):
            await client.integrations.list()
        assert len(fake.requests) == sent
        assert state.available  # a closed state is not an unreachable Redis


async def test_one_connection_serves_every_piece_and_outlives_them(
    fake: FakeSendcloud,
    redis_server: RedisServer,
    redis_client: aioredis.Redis,
    namespace: str,
) -> None:
    """Gates, tokens, leases and the ledger over one pool; closing them leaves it open."""
    from sendcloud_async.redis import (
        RedisConnection,
        RedisEventLedger,
        RedisState,
        RedisWatchStore,
    )

    fake.seed(integrations=1, logs_per_integration=0)
    fake.add_oauth_client("client-0", "secret-0")
    oauth = sc.OAuth2ClientCredentials("client-0", "secret-0", token_url=fake.token_url)
    name = f"{namespace}-pool"
    async with RedisConnection.from_url(redis_server.url, client_name=name) as connection:
        state = RedisState(connection, namespace=namespace, on_unavailable="raise")
        store = RedisWatchStore(
            connection, namespace=namespace, stream_prefix=f"{namespace}:logs", lease=5.0
        )
        ledger = RedisEventLedger(state)
        assert state.client is store.client is connection.client
        async with (
            state,
            store,
            sc.SendcloudClient(
                auth=oauth, base_url=fake.base_url, rate_limit=sc.RateLimits(), state=state
            ) as client,
        ):
            await asyncio.gather(*(client.integrations.list() for _ in range(5)))
            (lease,), _ = await store.claim(["acme"])
            assert await store.commit(lease, b"{}", [b'{"id": 1}']) == 1
            assert await ledger.admit(_event(7)) == "new"
            assert await ledger.size() == 1
        # Every key the pieces wrote went through the one pool.
        clients: Any = await redis_client.client_list()
        assert {c["name"] for c in clients} >= {name}
        assert await redis_client.exists(f"{namespace}:logs:acme") == 1
        assert [k async for k in redis_client.scan_iter(f"{namespace}:*:token")] != []
        assert fake.token_requests == 1
        # The pieces are closed; the connection they borrowed is not.
        assert state.closed
        assert store.closed
        assert not connection.closed
        assert await connection.call(connection.client.ping) is True
        with pytest.raises(sc.ClientClosedError, match="this RedisWatchStore is closed"):
            await store.read("acme")
        with pytest.raises(sc.ClientClosedError, match="this RedisState is closed"):
            await ledger.admit(_event(8))
        # A piece still open says so when the connection it borrowed is closed.
        late = RedisWatchStore(connection, namespace=namespace, stream_prefix=f"{namespace}:logs")
        assert await late.read("acme") == (b"{}", 1)
    assert connection.closed
    with pytest.raises(
        sc.ClientClosedError, match="the RedisConnection of this RedisWatchStore is closed"
    ):
        await late.read("acme")


async def test_a_piece_made_from_the_handle_of_another_borrows_the_connection_not_the_piece(
    redis_server: RedisServer, namespace: str
) -> None:
    """``RedisWatchStore(state.connection)``: closing the state does not close the store."""
    from sendcloud_async.redis import RedisConnection, RedisState, RedisWatchStore

    async with RedisConnection.from_url(redis_server.url) as connection:
        state = RedisState(connection, namespace=namespace)
        store = RedisWatchStore(state.connection, namespace=namespace)
        await state.aclose()
        assert await store.read("acme") == (None, 0)
        assert store.connection is not state.connection
    assert store.closed


async def test_a_borrowed_redis_py_client_is_never_closed(
    redis_server: RedisServer, redis_client: aioredis.Redis, namespace: str
) -> None:
    """Pieces over your own ``redis.asyncio.Redis``: closing them leaves it working."""
    from sendcloud_async.redis import RedisConnection, RedisState, RedisWatchStore

    pieces: list[RedisConnection | RedisState | RedisWatchStore] = [
        RedisConnection(redis_client),
        RedisState(redis_client, namespace=namespace),
        RedisWatchStore(redis_client, namespace=namespace),
    ]
    for piece in pieces:
        await piece.aclose()
        assert piece.closed
    assert await redis_client.ping() is True


async def test_from_url_splits_the_pieces_options_from_redis_pys(
    redis_server: RedisServer, namespace: str
) -> None:
    """A piece's own options go to it, the rest to redis-py; the SDK's defaults otherwise."""
    import redis.asyncio

    from sendcloud_async.redis import RedisConnection, RedisState, RedisWatchStore

    async with AsyncExitStack() as stack:
        state = RedisState.from_url(
            redis_server.url, namespace=namespace, lease=7.0, max_connections=4
        )
        store = RedisWatchStore.from_url(
            redis_server.url, namespace=namespace, lease=3.0, socket_timeout=1.5
        )
        connection = RedisConnection.from_url(redis_server.url)
        for piece in (state, store, connection):
            stack.push_async_callback(piece.aclose)
        assert (state.namespace, state.lease, store.lease) == (namespace, 7.0, 3.0)
        for piece, size, timeout in ((state, 4, 2.0), (store, 32, 1.5), (connection, 32, 2.0)):
            pool = piece.client.connection_pool
            assert isinstance(pool, redis.asyncio.BlockingConnectionPool)
            assert pool.max_connections == size
            assert pool.connection_kwargs["socket_timeout"] == timeout
            assert pool.connection_kwargs["socket_connect_timeout"] == 2.0
            assert pool.timeout is None  # a call queues for a connection
        assert await store.read("acme") == (None, 0)


def test_every_piece_refuses_a_client_it_cannot_use_at_once() -> None:
    """Not a client or a connection, or a namespace no key can begin with: InvalidInputError."""
    import redis.asyncio

    from sendcloud_async.redis import RedisConnection, RedisState, RedisWatchStore

    redis_binary()
    for make in (RedisConnection, RedisState, RedisWatchStore):
        with pytest.raises(sc.InvalidInputError, match=r"must be a redis\.asyncio\.Redis"):
            make("redis://localhost")  # type: ignore[arg-type]
    connection = RedisConnection(redis.asyncio.Redis())
    for make in (RedisState, RedisWatchStore):
        for bad in ("", "a{b", 3):
            with pytest.raises(sc.InvalidInputError, match="namespace must be a non-empty"):
                make(connection, namespace=bad)  # type: ignore[arg-type]
    text = RedisConnection(redis.asyncio.Redis(decode_responses=True))
    with pytest.raises(sc.InvalidInputError, match="must return bytes"):
        RedisWatchStore(text)
    with pytest.raises(sc.InvalidInputError, match="database must be a number"):
        RedisConnection.from_url("redis://:s3cret@127.0.0.1:6379/abc")


# -- the rules of a call ---------------------------------------------------------------------


async def _fill(client: aioredis.Redis, connections: int) -> None:
    """Leave ``connections`` idle connections in the pool (each held by a short BLPOP)."""
    await asyncio.gather(*(client.blpop(["nothing"], 0.05) for _ in range(connections)))


@pytest.mark.parametrize("kind", ["RedisConnection", "RedisWatchStore"])
async def test_a_redis_restart_costs_one_call_no_error(
    own_redis: RedisServer, namespace: str, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    """Redis restarted between two calls: every idle pooled connection is dead, yet the
    next call succeeds, on fresh connections, with no outage said or logged."""
    from sendcloud_async.redis import RedisConnection, RedisWatchStore

    caplog.set_level(logging.INFO, "sendcloud_async")
    async with RedisConnection.from_url(own_redis.url) as connection:
        store = RedisWatchStore(connection, namespace=namespace)

        async def use() -> object:
            if kind == "RedisWatchStore":
                return await store.claim(["acme"])
            return await connection.call(connection.client.ping)

        await _fill(connection.client, 4)
        await use()
        own_redis.stop()
        own_redis.start()
        await use()  # the first call after the restart: no StateUnavailableError
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_the_restart_above_fails_the_first_call_of_redis_py_alone(
    own_redis: RedisServer,
) -> None:
    """The same restart met by a plain redis-py client: its first call fails. The test above
    meets a dead pooled connection, which is what the connection's one retry is for."""
    import redis.asyncio
    from redis import exceptions

    client = redis.asyncio.Redis.from_url(own_redis.url)
    try:
        await _fill(client, 4)
        own_redis.stop()
        own_redis.start()
        with pytest.raises(exceptions.ConnectionError, match="Connection closed by server"):
            await client.ping()
    finally:
        await client.aclose()


async def test_a_full_pool_is_waited_for_not_taken_for_an_outage(
    redis_server: RedisServer,
) -> None:
    """A borrowed client whose pool does not queue (2 connections), 12 calls at once: all
    succeed; the pool stays full for under the 5 s it is waited for."""
    import redis.asyncio
    from redis import exceptions

    from sendcloud_async.redis import RedisConnection

    pool = redis.asyncio.ConnectionPool.from_url(redis_server.url, max_connections=2)
    client = redis.asyncio.Redis(connection_pool=pool)
    try:
        connection = RedisConnection(client)

        async def hold() -> object:
            return await connection.call(lambda: client.blpop(["nothing"], 0.05))

        with pytest.raises(exceptions.MaxConnectionsError):  # redis-py alone
            await asyncio.gather(*(client.blpop(["nothing"], 0.05) for _ in range(3)))
        started = time.monotonic()
        assert await asyncio.gather(*(hold() for _ in range(12))) == [None] * 12
        assert time.monotonic() - started < 2.0
    finally:
        await client.aclose()
        await pool.disconnect()


async def test_a_pool_full_for_longer_than_the_wait_is_an_outage(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both connections held past the wait for one: StateUnavailableError that says why."""
    import redis.asyncio

    from sendcloud_async._redis import _conn as _redis_conn
    from sendcloud_async.redis import RedisConnection

    monkeypatch.setattr(_redis_conn, "POOL_WAIT", 0.2)
    pool = redis.asyncio.ConnectionPool.from_url(redis_server.url, max_connections=2)
    client = redis.asyncio.Redis(connection_pool=pool)
    try:
        connection = RedisConnection(client)
        held = [
            asyncio.create_task(connection.call(lambda: client.blpop(["nothing"], 1.0)))
            for _ in range(2)
        ]
        await asyncio.sleep(0.1)
        started = time.monotonic()
        with pytest.raises(
            sc.StateUnavailableError, match=r"no free connection in the pool for 0\.2 s"
        ):
            await connection.call(client.ping)
        assert 0.15 < time.monotonic() - started < 0.8
        assert await asyncio.gather(*held) == [None, None]
    finally:
        await client.aclose()
        await pool.disconnect()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers; its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for sock in held:
            sock.close()
        listener.close()


async def test_a_redis_that_never_answers_is_unreachable_after_the_call_timeout(
    silent_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client made without any socket timeout: the call's own bound still ends it."""
    import redis.asyncio

    from sendcloud_async._redis import _conn as _redis_conn
    from sendcloud_async.redis import RedisConnection

    redis_binary()
    monkeypatch.setattr(_redis_conn, "CALL_TIMEOUT", 0.3)
    client = redis.asyncio.Redis(host="127.0.0.1", port=silent_server, socket_timeout=None)
    try:
        connection = RedisConnection(client)
        started = time.monotonic()
        with pytest.raises(sc.StateUnavailableError, match=r"no answer within 0\.3 s"):
            await connection.call(client.ping)
        assert 0.25 < time.monotonic() - started < 1.5
    finally:
        await client.aclose()


async def test_a_call_cut_by_aclose_says_closed_and_does_not_reconnect(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """``aclose()`` while a call waits on Redis: that call raises ClientClosedError, and no
    connection is opened again behind the caller's back."""
    from sendcloud_async.redis import RedisConnection

    name = f"closing-{free_port()}"
    connection = RedisConnection.from_url(redis_server.url, client_name=name)
    waiting = asyncio.create_task(
        connection.call(lambda: connection.client.blpop(["nothing"], 2.0))
    )
    await asyncio.sleep(0.2)  # the BLPOP is on its way
    await connection.aclose()
    with pytest.raises(sc.ClientClosedError, match="this RedisConnection is closed"):
        await waiting
    await asyncio.sleep(0.1)
    clients: Any = await redis_client.client_list()
    assert [c for c in clients if c["name"] == name] == []


async def test_scan_matches_the_prefix_literally_and_filters_by_type(
    redis_server: RedisServer, redis_client: aioredis.Redis, namespace: str
) -> None:
    """A prefix with glob characters matches only itself; ``key_type`` keeps one type; a
    scan over more keys than one step returns yields every one of them."""
    from sendcloud_async.redis import RedisConnection

    globby, lookalike = f"{namespace}[*]?", f"{namespace}[x]y"
    await redis_client.set(f"{globby}:plain", 1)
    await redis_client.xadd(f"{globby}:stream", {"log": b"{}"})
    await redis_client.set(f"{lookalike}:plain", 1)
    await redis_client.mset({f"{namespace}:many:{n}": n for n in range(2500)})
    async with RedisConnection.from_url(redis_server.url) as connection:
        found = [k async for keys in connection.scan(f"{globby}:") for k in keys]
        assert sorted(found) == [f"{globby}:plain", f"{globby}:stream"]
        streams = [
            k async for keys in connection.scan(f"{globby}:", key_type="stream") for k in keys
        ]
        assert streams == [f"{globby}:stream"]
        steps: list[list[str]] = [keys async for keys in connection.scan(f"{namespace}:many:")]
        assert len(steps) > 1
        assert {k for keys in steps for k in keys} == {f"{namespace}:many:{n}" for n in range(2500)}
        assert [k async for keys in connection.scan(f"{namespace}:many:", "1?") for k in keys] != []


async def test_an_outage_in_the_middle_of_a_scan_is_state_unavailable(
    own_redis: RedisServer,
) -> None:
    """Redis goes away between two SCAN steps: StateUnavailableError, like any call."""
    import redis.asyncio

    from sendcloud_async.redis import RedisConnection

    seed = redis.asyncio.Redis.from_url(own_redis.url)
    try:
        await seed.mset({f"k:{n}": n for n in range(3000)})
    finally:
        await seed.aclose()
    async with RedisConnection.from_url(own_redis.url) as connection:
        steps = connection.scan("k:", count=100)
        assert len(await anext(steps)) > 0
        own_redis.stop()
        with pytest.raises(sc.StateUnavailableError, match="Redis is unreachable"):
            async for _ in steps:
                pass


@pytest.fixture
async def pieces(redis_server: RedisServer, namespace: str) -> AsyncIterator[list[Any]]:
    """A RedisState and a RedisWatchStore over one RedisConnection (closed after the test)."""
    from sendcloud_async.redis import RedisConnection, RedisState, RedisWatchStore

    async with RedisConnection.from_url(redis_server.url) as connection:
        yield [RedisState(connection, namespace=namespace), RedisWatchStore(connection)]


async def test_reprs_say_closed_and_never_the_url(pieces: list[Any]) -> None:
    """The connection's repr says whether it is closed and owned; no URL, no password."""
    from sendcloud_async.redis import RedisConnection

    state, store = pieces
    assert repr(state.connection) == "<RedisConnection borrowed client>"
    await store.aclose()
    assert repr(store.connection) == "<RedisConnection closed borrowed client>"
    owned = RedisConnection.from_url("redis://:s3cret@127.0.0.1:6379/0")
    assert repr(owned) == "<RedisConnection owned client>"
    assert "s3cret" not in repr(owned)
    await owned.aclose()
