"""``client.logs.watch`` over real sockets, for both listing orders: every log exactly once."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import msgspec
import pytest

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud, Fault
from tests.functional.test_cancellation import assert_clean

ORDERS = ("oldest_first", "newest_first")


@pytest.fixture(params=ORDERS)
async def tied(request: pytest.FixtureRequest) -> AsyncIterator[FakeSendcloud]:
    """A FakeSendcloud serving one listing order, whose logs may share a created_at."""
    async with FakeSendcloud(
        validate_spec=True, log_order=request.param, unique_log_times=False
    ) as server:
        yield server
        assert server.spec_violations == []


@pytest.fixture
async def watcher(tied: FakeSendcloud) -> AsyncIterator[sc.SendcloudClient]:
    """A client of ``tied``."""
    async with sc.SendcloudClient(
        auth=tied.basic_auth, base_url=tied.base_url, timeout=10.0, max_retries=2
    ) as c:
        yield c


def newest(fake: FakeSendcloud) -> datetime:
    """The created_at of the newest log."""
    return max(datetime.fromisoformat(r["created_at"]) for r in fake.logs)


def add_logs(fake: FakeSendcloud, rng: random.Random, count: int, *, group: int = 4) -> list[int]:
    """Add ``count`` logs after the newest; about half share an instant (at most ``group``)."""
    added = []
    when = newest(fake) if fake.logs else datetime.fromisoformat("2024-01-01T00:00:00+01:00")
    at_when = sum(1 for r in fake.logs if datetime.fromisoformat(r["created_at"]) == when)
    for _ in range(count):
        if at_when >= group or rng.random() < 0.5:
            when += rng.choice((timedelta(microseconds=1), timedelta(seconds=1)))
            at_when = 0
        record = fake.add_log(rng.choice(sorted(fake.integrations)), created_at=when.isoformat())
        at_when += 1
        added.append(record["id"])
    return added


async def drain(
    client: sc.SendcloudClient, state: sc.WatchState | bytes | None, **kwargs: object
) -> tuple[list[sc.LogBatch], sc.WatchState | None]:
    """Every batch of one ``once=True`` poll, and the last batch's state (or ``state``)."""
    batches = [b async for b in client.logs.watch(state, once=True, **kwargs)]  # type: ignore[arg-type]
    if isinstance(state, bytes):
        state = msgspec.json.decode(state, type=sc.WatchState)
    return batches, batches[-1].state if batches else state


def ids_of(batches: list[sc.LogBatch]) -> list[int]:
    """The ids of every log in ``batches``, in order."""
    return [item.id for b in batches for item in b.items if item.id is not None]


async def test_all_then_new_logs_then_resume_from_every_batch(
    tied: FakeSendcloud, watcher: sc.SendcloudClient
) -> None:
    """start=all delivers each log once; new logs (ties, added mid-walk) once; resume anywhere."""
    rng = random.Random(1)
    tied.seed(integrations=3, logs_per_integration=20)
    add_logs(tied, rng, 30)
    batches, state = await drain(watcher, None, start="all", page_size=5)
    assert sorted(ids_of(batches)) == sorted(r["id"] for r in tied.logs)
    assert len(ids_of(batches)) == len(tied.logs)
    assert all(0 < len(b.items) <= 5 for b in batches)

    # New logs, then more created while the next catch-up walks the pages.
    first_new = add_logs(tied, rng, 23)
    during: list[int] = []
    seen: list[int] = []
    async for batch in watcher.logs.watch(state, once=True, page_size=4):
        seen += [item.id for item in batch.items if item.id is not None]
        state = batch.state
        if not during:
            during = add_logs(tied, rng, 9)
    # Oldest-first, they are at the end of the walk; newest-first, above its head.
    rest, state = await drain(watcher, state, page_size=4)
    seen += ids_of(rest)
    assert Counter(seen) == Counter(first_new + during)
    if tied.log_order == "oldest_first":
        assert rest == []

    # A stable set of new logs, one poll, then a simulated crash after each batch.
    later = add_logs(tied, rng, 31, group=3)
    poll, _ = await drain(watcher, state, page_size=3)
    assert Counter(ids_of(poll)) == Counter(later)
    for k, batch in enumerate(poll):
        raw = msgspec.json.encode(batch.state)
        resumed, _ = await drain(watcher, msgspec.json.decode(raw, type=sc.WatchState), page_size=3)
        assert ids_of(resumed) == ids_of(poll[k + 1 :]), f"resumed after batch {k}"


@pytest.mark.parametrize("seed", range(6))
async def test_random_crashes_deliver_every_log_exactly_once(
    tied: FakeSendcloud, watcher: sc.SendcloudClient, seed: int
) -> None:
    """Logs added between and during polls, crashes after random batches: each log once."""
    rng = random.Random(seed)
    tied.seed(integrations=2, logs_per_integration=rng.randint(0, 15))
    page_size = rng.randint(4, 9)
    start: str | datetime = "all"
    if tied.logs and rng.random() < 0.5:
        start = datetime.fromisoformat(tied.logs[len(tied.logs) // 2]["created_at"])
    saved: bytes | None = None
    delivered: list[int] = []
    for _ in range(12):
        add_logs(tied, rng, rng.randint(0, 12), group=page_size)
        crash_after = rng.randint(0, 4)
        gen = watcher.logs.watch(saved, start=start, once=True, page_size=page_size)
        async for batch in gen:
            delivered += [i.id for i in batch.items if i.id is not None]
            saved = msgspec.json.encode(batch.state)
            if rng.random() < 0.3:
                add_logs(tied, rng, rng.randint(1, 5), group=page_size)
            crash_after -= 1
            if crash_after == 0:
                break
        await gen.aclose()
    for _ in range(2):
        batches, last = await drain(watcher, saved, page_size=page_size)
        delivered += ids_of(batches)
        if last is not None:
            saved = msgspec.json.encode(last)
    expected = [
        r["id"]
        for r in tied.logs
        if not isinstance(start, datetime) or datetime.fromisoformat(r["created_at"]) > start
    ]
    assert Counter(delivered) == Counter(expected)


async def test_watch_of_one_integration(tied: FakeSendcloud, watcher: sc.SendcloudClient) -> None:
    """integration_id: only that integration's logs, and its state is kept apart."""
    rng = random.Random(3)
    tied.seed(integrations=3, logs_per_integration=10)
    add_logs(tied, rng, 20)
    batches, state = await drain(watcher, None, start="all", integration_id=2, page_size=3)
    wanted = [r["id"] for r in tied.logs if r["integration_id"] == 2]
    assert sorted(ids_of(batches)) == sorted(wanted)
    assert state is not None
    assert state.integration_id == 2
    tied.clear_requests()
    with pytest.raises(
        sc.InvalidInputError, match="state belongs to a watch of integration 2, not of every"
    ):
        watcher.logs.watch(state)
    assert tied.requests == []


async def test_start_now_and_start_datetime(
    tied: FakeSendcloud, watcher: sc.SendcloudClient
) -> None:
    """now: only logs created after the watch began; a datetime: the logs after it."""
    tied.seed(integrations=1, logs_per_integration=30)
    cut = datetime.fromisoformat(tied.logs[17]["created_at"])
    batches, _ = await drain(watcher, None, start=cut, page_size=4)
    assert sorted(ids_of(batches)) == [r["id"] for r in tied.logs[18:]]
    state = sc.WatchState.initial("now")
    batches, _ = await drain(watcher, state, page_size=4)
    assert batches == []
    fresh = tied.add_log(1)
    batches, _ = await drain(watcher, state, page_size=4)
    assert ids_of(batches) == [fresh["id"]]


async def test_order_is_detected_from_the_data(
    tied: FakeSendcloud, watcher: sc.SendcloudClient
) -> None:
    """The state records the listing's direction once two instants were seen."""
    tied.seed(integrations=1, logs_per_integration=5)
    _, state = await drain(watcher, None, start="all", page_size=2)
    assert state is not None
    assert state.order == tied.log_order


async def test_keeps_polling_every_interval_until_closed(
    tied: FakeSendcloud, watcher: sc.SendcloudClient
) -> None:
    """once=False: caught up, it sleeps ``interval`` and finds what came meanwhile."""
    tied.seed(integrations=1, logs_per_integration=3)
    got: list[int] = []
    gen = watcher.logs.watch(start="all", interval=0.05, page_size=10)
    async for batch in gen:
        got += [i.id for i in batch.items if i.id is not None]
        if len(got) == 3:
            tied.add_log(1)
        if len(got) == 4:
            break
    await gen.aclose()
    assert got == sorted(got) if tied.log_order == "oldest_first" else len(got) == 4
    assert sorted(got) == [1, 2, 3, 4]
    gets = [r for r in tied.requests if r.method == "GET"]
    assert len(gets) >= 2


async def test_more_logs_at_one_instant_than_a_page_holds_terminates(
    tied: FakeSendcloud, watcher: sc.SendcloudClient
) -> None:
    """A tie group bigger than a page (the cursor's limit): no loop and no duplicate."""
    tied.seed(integrations=1, logs_per_integration=2)
    when = newest(tied) + timedelta(seconds=1)
    for _ in range(7):
        tied.add_log(1, created_at=when.isoformat())
    tied.add_log(1, created_at=(when + timedelta(seconds=1)).isoformat())
    batches, _ = await drain(watcher, None, start="all", page_size=3)
    got = ids_of(batches)
    assert len(got) == len(set(got))
    assert {1, 2, 10} <= set(got)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval": -1.0}, "interval must be a positive number of seconds, got -1.0"),
        ({"interval": 0}, "interval must be a positive number of seconds, got 0"),
        (
            {"start": "yesterday"},
            "start must be 'now', 'all' or an aware datetime, got 'yesterday'",
        ),
        ({"start": datetime(2024, 1, 1)}, "start must be an aware datetime (with a UTC offset)"),
        ({"state": b"{not json"}, "state is not a valid WatchState: JSON is malformed"),
        (
            {"state": b'{"mark": 5}'},
            "state is not a valid WatchState: Expected `datetime | null`, got `int`",
        ),
        ({"state": "x"}, "state is not a valid WatchState: JSON is malformed"),
        ({"page_size": 0}, "page_size must be between 1 and 100, got 0"),
        ({"page_size": None}, "page_size must be an int, not NoneType"),
        ({"once": 1}, "once must be a bool, not int"),
        ({"integration_id": 0}, "integration_id must be 1 or more, got 0"),
    ],
)
async def test_bad_arguments_are_refused_before_any_request(
    fake: FakeSendcloud, client: sc.SendcloudClient, kwargs: dict[str, object], message: str
) -> None:
    """Each bad argument: InvalidInputError with a clear message, raised at the call; no request."""
    fake.seed(integrations=1, logs_per_integration=3)
    with pytest.raises(sc.InvalidInputError) as info:
        client.logs.watch(**kwargs)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)
    assert fake.requests == []


async def test_an_api_error_ends_the_watch_with_the_state_of_the_last_batch(
    fake: FakeSendcloud, client: sc.SendcloudClient, retries: list[object]
) -> None:
    """A 401 mid-walk raises AuthenticationError; resuming from the last batch loses nothing."""
    fake.seed(integrations=1, logs_per_integration=12)
    got: list[int] = []
    state: sc.WatchState | None = None

    async def consume() -> None:
        nonlocal state
        async for batch in client.logs.watch(start="all", once=True, page_size=5):
            got.extend(i.id for i in batch.items if i.id is not None)
            state = batch.state
            fake.inject("GET", "/integrations/logs", Fault.status(401))

    with pytest.raises(sc.AuthenticationError):
        await consume()
    assert got == [1, 2, 3, 4, 5]
    rest, _ = await drain(client, state, page_size=5)
    assert got + ids_of(rest) == list(range(1, 13))


async def test_cancelling_a_watch_leaves_nothing_open(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """Cancelled during a request or during the sleep: no connection, no task, no warning."""
    fake.seed(integrations=1, logs_per_integration=3)
    before = asyncio.all_tasks()

    async def consume() -> None:
        async for _ in client.logs.watch(start="all", interval=30.0):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)  # caught up, sleeping
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_clean(client, before)
    fake.inject("GET", "/integrations/logs", Fault.delay(5.0))
    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)  # waiting for the delayed page
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_clean(client, before)


async def test_fake_serves_either_order_and_keeps_ties() -> None:
    """log_order and unique_log_times: pages newest-first strictly before the cursor; ties kept."""
    async with FakeSendcloud(
        validate_spec=True, log_order="newest_first", unique_log_times=False
    ) as fake:
        fake.seed(integrations=1, logs_per_integration=5)
        tie = fake.add_log(1, created_at=fake.logs[-1]["created_at"])
        assert tie["created_at"] == fake.logs[-2]["created_at"]
        async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
            pages = [p async for p in client.logs.pages(page_size=2, read_ahead=0)]
        assert [[i.id for i in p.items] for p in pages] == [[6, 5], [4, 3], [2, 1]]
        assert pages[0].next_cursor == fake.logs[-2]["created_at"]
        assert fake.log_order == "newest_first"
        assert fake.spec_violations == []
    with pytest.raises(ValueError, match="log_order must be one of oldest_first, newest_first"):
        FakeSendcloud(log_order="sideways")


async def test_fake_integrations_start_and_stop_failing(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """start_failing sets started_failing_at (now or given); stop_failing clears it."""
    fake.add_integration(id=1)
    when = datetime.fromisoformat("2024-05-01T10:00:00+02:00")
    fake.start_failing(1, at=when)
    assert (await client.integrations.get(1)).started_failing_at == when
    fake.stop_failing(1)
    assert (await client.integrations.get(1)).started_failing_at is None
    fake.start_failing(1)
    assert (await client.integrations.get(1)).started_failing_at is not None
    with pytest.raises(ValueError, match="at must be an aware datetime"):
        fake.start_failing(1, at=datetime(2024, 1, 1))
