"""Logs that become visible late: the lookback window keeps the watch exactly once.

Against a real ``FakeSendcloud`` whose logs commit late (``commit_delay``,
``add_log(visible_after=…)``): a log keeps the ``created_at`` and id it got when it
was added, and the listing shows it only later, after newer logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web

import sendcloud_async as sc
from sendcloud_async._sources._watch_state import DEFAULT_LOOKBACK
from sendcloud_async._time import http_date
from sendcloud_async.testing import FakeSendcloud
from tests._wait import until
from tests.functional._hostile import serving

ORDERS = ["oldest_first", "newest_first"]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "watch_v1"
TICK = timedelta(microseconds=1)
#: What a proxy in front of the fake does to its ``Date`` header (see ``dated``).
NO_DATE = [None, "soon"]


@contextlib.asynccontextmanager
async def dated(fake: FakeSendcloud, date: str | None) -> AsyncIterator[str]:
    """A real HTTP proxy in front of ``fake`` that answers with ``Date: date`` (``None``: no
    ``Date`` header at all); yields the API base URL to give a client."""
    where: list[str] = []
    async with aiohttp.ClientSession() as session:

        async def forward(request: web.Request) -> web.Response:
            sent = {k: v for k, v in request.headers.items() if k.lower() == "authorization"}
            async with session.request(
                request.method, fake.origin + request.raw_path, headers=sent
            ) as upstream:
                body = await upstream.read()
                kept = {"content-type", "link"}
                headers = {k: v for k, v in upstream.headers.items() if k.lower() in kept}
            if "Link" in headers:  # the fake's next link, through the proxy
                headers["Link"] = headers["Link"].replace(fake.origin, where[0])
            return web.Response(status=upstream.status, body=body, headers=headers)

        async def restamp(request: web.BaseRequest, response: web.StreamResponse) -> None:
            del request
            response.headers.popall("Date", None)  # aiohttp sets one: take it out
            if date is not None:
                response.headers["Date"] = date

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        app.on_response_prepare.append(restamp)
        async with serving(app) as origin:
            where.append(origin)
            yield origin + fake.base_url.removeprefix(fake.origin)


def listings(fake: FakeSendcloud) -> list[tuple[str, str, dict[str, str]]]:
    """The logs listings the fake received: method, path and query."""
    return [(r.method, r.path, r.query) for r in fake.requests if r.path.endswith("/logs")]


async def produce(fake: FakeSendcloud, count: int, *, ties: bool, seed: int) -> None:
    """``count`` logs over about two seconds, stamped now, some sharing an instant."""
    rng = random.Random(seed)
    made = 0
    while made < count:
        now = datetime.now(UTC)
        for _ in range(rng.choice((1, 1, 2, 3)) if ties else 1):
            fake.add_log(1 + made % 2, created_at=now, base_url="https://shop.example")
            made += 1
            if made == count:
                break
        await asyncio.sleep(rng.uniform(0, 0.04))


async def restart_after_every_batch(
    client: sc.SendcloudClient,
    state: sc.WatchState | None,
    *,
    until: asyncio.Event,
    lookback: float,
) -> tuple[list[int], list[sc.LogBatch]]:
    """Watch, and start a new watch from each batch's state (a restart after every batch)."""
    delivered: list[int] = []
    batches: list[sc.LogBatch] = []
    quiet = 0
    while quiet < 3:  # after `until`: three polls in a row with nothing new
        batch = None
        watch = client.logs.watch(
            state, start="all", interval=0.02, page_size=7, lookback=lookback, once=True
        )
        async for batch in watch:  # noqa: B007 (the first batch, then a restart)
            break
        await watch.aclose()
        if batch is None:
            quiet = quiet + 1 if until.is_set() else 0
            await asyncio.sleep(0.05)
            continue
        quiet = 0
        delivered += [log.id for log in batch.items if log.id is not None]
        batches.append(batch)
        state = msgspec.json.decode(msgspec.json.encode(batch.state), type=sc.WatchState)
    return delivered, batches


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("ties", [False, True], ids=["unique", "ties"])
async def test_logs_committed_late_within_the_window_arrive_exactly_once(
    order: str, ties: bool
) -> None:
    """Random commit delays up to half the window; a restart from every batch's state."""
    lookback = 2.0
    async with (
        FakeSendcloud(log_order=order, unique_log_times=not ties) as fake,
        sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client,
    ):
        fake.seed(integrations=2, logs_per_integration=0)
        fake.commit_delay = (0.0, lookback / 2)
        done = asyncio.Event()

        async def producer() -> None:
            await produce(fake, 150, ties=ties, seed=len(order) + ties)
            while fake.hidden_logs:  # noqa: ASYNC110 (the fake has no event for it)
                await asyncio.sleep(0.05)
            done.set()

        task = asyncio.create_task(producer())
        delivered, batches = await restart_after_every_batch(
            client, None, until=done, lookback=lookback
        )
        await task
        every = [record["id"] for record in fake.logs]
    assert len(every) == 150
    assert Counter(delivered) == Counter(every)  # each once: nothing lost, nothing twice
    late = [log for batch in batches for log in batch.late]
    assert late  # the delays did put logs behind the mark, and the window caught them
    assert all(0 <= log.behind <= lookback for log in late)
    assert max(batch.lateness for batch in batches) == max(log.behind for log in late)
    late_ids = {log.id for log in late}
    assert late_ids <= set(every)


@pytest.mark.parametrize("order", ORDERS)
async def test_a_log_later_than_the_window_is_missed_and_one_inside_is_reported(
    order: str,
) -> None:
    """The documented rule (1): behind the mark by more than ``lookback`` is missed, never
    doubled. The logs are a few seconds old, so rule (2) (the server's clock) lets both in."""
    async with (
        FakeSendcloud(log_order=order) as fake,
        sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client,
    ):
        fake.seed(integrations=1, logs_per_integration=0)
        base = datetime.now(UTC) - timedelta(seconds=4)
        for n in range(5):
            fake.add_log(1, created_at=base + timedelta(seconds=n), base_url="https://s.example")
        first = [b async for b in client.logs.watch(start="all", lookback=20, once=True)]
        mark = base + timedelta(seconds=4)  # the newest log delivered
        inside = fake.add_log(
            1, created_at=mark - timedelta(seconds=7.5), base_url="https://s.example"
        )
        outside = fake.add_log(
            1, created_at=mark - timedelta(seconds=22), base_url="https://s.example"
        )
        state = first[-1].state
        second = [b async for b in client.logs.watch(state, lookback=20, once=True)]
        third = [b async for b in client.logs.watch(second[-1].state, lookback=20, once=True)]
    assert sorted(log.id or 0 for b in first for log in b.items) == [1, 2, 3, 4, 5]
    assert [log.id for b in second for log in b.items] == [inside["id"]]
    (late,) = second[0].late
    assert (late.id, late.behind) == (inside["id"], 7.5)
    assert second[0].lateness == 7.5
    assert third == []  # nothing again, and the log outside the window never
    assert outside["id"] not in [log.id for b in first + second for log in b.items]


@pytest.mark.parametrize("order", ORDERS)
async def test_lookback_zero_is_the_watch_without_a_window(order: str) -> None:
    """``lookback=0``: a late log behind the mark is not delivered (today's behaviour)."""
    async with (
        FakeSendcloud(log_order=order) as fake,
        sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client,
    ):
        fake.seed(integrations=1, logs_per_integration=3)
        first = [b async for b in client.logs.watch(start="all", lookback=0, once=True)]
        mark = first[-1].state.mark
        assert mark is not None
        fake.add_log(1, created_at=mark - timedelta(seconds=1), base_url="https://s.example")
        again = [b async for b in client.logs.watch(first[-1].state, lookback=0, once=True)]
        state = first[-1].state
    assert again == []
    assert (state.low, state.recent, state.scan) == (state.mark, (), None)


@pytest.mark.parametrize("order", ORDERS)
async def test_the_default_window_costs_no_request_on_a_quiet_account(order: str) -> None:
    """Fewer than a page of logs in the window: as many GETs per poll as without a window."""
    counts = {}
    async with FakeSendcloud(log_order=order) as fake:
        fake.seed(integrations=1, logs_per_integration=30)
        async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
            for lookback in (DEFAULT_LOOKBACK, timedelta(0)):
                state = None
                async for batch in client.logs.watch(start="all", lookback=lookback, once=True):
                    state = batch.state
                fake.clear_requests()
                for _ in range(5):  # five idle polls
                    async for batch in client.logs.watch(state, lookback=lookback, once=True):
                        raise AssertionError(f"nothing is new, got {batch.items}")
                counts[lookback.total_seconds()] = len(fake.requests)
    assert counts[DEFAULT_LOOKBACK.total_seconds()] == counts[0.0] == 5


# -- the window closes by the server's clock ------------------------------------------


async def test_the_fake_dates_its_answers(fake: FakeSendcloud) -> None:
    """The server's clock reaches the watch in the ``Date`` header: the fake sends one."""
    fake.seed(integrations=1, logs_per_integration=1)
    auth = {"Authorization": fake.basic_auth.header.get_secret_value()}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{fake.base_url}/integrations/logs", headers=auth) as resp,
    ):
        assert resp.status == 200
        sent = http_date(resp.headers.get("Date"))
    assert sent is not None
    assert abs((datetime.now(UTC) - sent).total_seconds()) < 5


@pytest.mark.parametrize("order", ORDERS)
async def test_an_idle_account_makes_the_requests_of_lookback_zero(order: str) -> None:
    """No log within the window (the seeded logs are from 2023): every idle poll is the very
    request of ``lookback=0``, query for query, and the state holds no window."""
    requests = {}
    async with FakeSendcloud(log_order=order) as fake:
        fake.seed(integrations=2, logs_per_integration=15)
        async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
            for lookback in (DEFAULT_LOOKBACK, timedelta(0)):
                batches = [
                    b async for b in client.logs.watch(start="all", lookback=lookback, once=True)
                ]
                state = batches[-1].state
                assert sum(len(b.items) for b in batches) == 30
                assert (state.low, state.recent, state.scan) == (state.mark, (), None)
                fake.clear_requests()
                for _ in range(5):  # five idle polls
                    async for batch in client.logs.watch(state, lookback=lookback, once=True):
                        raise AssertionError(f"nothing is new, got {batch.items}")
                assert len(fake.requests) == 5
                requests[lookback] = listings(fake)
    assert len(requests[DEFAULT_LOOKBACK]) == 5
    assert requests[DEFAULT_LOOKBACK] == requests[timedelta(0)]


@pytest.mark.parametrize("order", ORDERS)
async def test_a_running_watch_closes_its_window_once_the_servers_clock_is_past_it(
    order: str,
) -> None:
    """Logs just created: the idle polls re-read them (the window), until the server's ``Date``
    is ``lookback`` + 2 s past them; from then on a poll is the one request of ``lookback=0``."""
    lookback = 0.5
    delivered: list[int] = []
    marks: list[datetime] = []
    async with (
        FakeSendcloud(log_order=order) as fake,
        sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client,
    ):
        fake.seed(integrations=1, logs_per_integration=0)
        now = datetime.now(UTC)
        for n in range(6):
            fake.add_log(1, created_at=now + n * TICK * 1000, base_url="https://s.example")

        async def run() -> None:
            async for batch in client.logs.watch(
                start="all", interval=0.2, page_size=2, lookback=lookback
            ):
                delivered.extend(log.id or 0 for log in batch.items)
                marks.extend(log.created_at for log in batch.items if log.created_at)

        task = asyncio.create_task(run())
        try:
            await until(lambda: len(delivered) == 6)
            fake.clear_requests()
            await asyncio.sleep(0.5)
            opened = listings(fake)
            # The Date has a resolution of 1 s; then one more poll to use it.
            closes = now + timedelta(seconds=lookback + 2 + 1 + 1)
            await asyncio.sleep((closes - datetime.now(UTC)).total_seconds())
            fake.clear_requests()
            await asyncio.sleep(1.0)
            closed = listings(fake)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert sorted(delivered) == [1, 2, 3, 4, 5, 6]
    mark = max(marks)  # the newest log
    assert len(closed) >= 3  # it went on polling
    if order == "oldest_first":
        # Each poll re-read the window from its bottom (in pages of two); then from the mark.
        cursors = [datetime.fromisoformat(q["cursor"]) for _, _, q in opened]
        assert min(cursors) == mark - timedelta(seconds=lookback) - TICK
        assert {datetime.fromisoformat(q["cursor"]) for _, _, q in closed} == {mark - TICK}
    else:
        # The walk down the window takes three pages of two; then the first page is enough.
        assert any("cursor" in q for _, _, q in opened)
        assert not any("cursor" in q for _, _, q in closed)


@pytest.mark.parametrize("date", [True, *NO_DATE], ids=["date", "no-date", "bad-date"])
@pytest.mark.parametrize("order", ORDERS)
async def test_a_log_visible_later_than_lookback_after_its_creation_is_missed(
    order: str, date: bool | str | None
) -> None:
    """Rule (2): a quiet account, a log that becomes visible 4.5 s after its ``created_at``
    (the window: 0.5 s) behind a newer one is missed, though it is 2 ms behind the mark.

    Without a readable ``Date`` rule (2) is out: the mark alone decides, and it arrives.
    """
    lookback = 0.5
    delivered: list[int] = []
    late: list[sc.LateLog] = []
    async with FakeSendcloud(log_order=order) as fake, contextlib.AsyncExitStack() as stack:
        base_url = fake.base_url
        if not isinstance(date, bool):
            base_url = await stack.enter_async_context(dated(fake, date))
        client = await stack.enter_async_context(
            sc.SendcloudClient(auth=fake.basic_auth, base_url=base_url)
        )
        fake.seed(integrations=1, logs_per_integration=3)  # from 2023: the account was quiet

        async def run() -> None:
            async for batch in client.logs.watch(start="all", interval=0.2, lookback=lookback):
                delivered.extend(log.id or 0 for log in batch.items)
                late.extend(batch.late)

        task = asyncio.create_task(run())
        try:
            await until(lambda: len(delivered) == 3)
            now = datetime.now(UTC)
            slow = fake.add_log(1, created_at=now, visible_after=4.5, base_url="https://s.example")
            newer = fake.add_log(1, created_at=now + 2000 * TICK, base_url="https://s.example")
            await until(lambda: newer["id"] in delivered)
            await until(lambda: not fake.hidden_logs)
            fake.clear_requests()
            await until(lambda: len(listings(fake)) >= 3)  # polls that list it
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if date is True:
        assert sorted(delivered) == [1, 2, 3, newer["id"]]  # missed, and nothing twice
        assert late == []
    else:
        assert sorted(delivered) == [1, 2, 3, slow["id"], newer["id"]]
        assert [(log.id, log.behind) for log in late] == [(slow["id"], 0.002)]


@pytest.mark.parametrize("date", NO_DATE, ids=["no-date", "bad-date"])
@pytest.mark.parametrize("order", ORDERS)
async def test_without_a_readable_date_the_window_stays_and_late_logs_arrive_once(
    order: str, date: str | None
) -> None:
    """No ``Date`` (or one that is not a date): the window is ``lookback`` behind the mark,
    as before; random commit delays and a restart from every batch: each log once."""
    lookback = 2.0
    async with (
        FakeSendcloud(log_order=order, unique_log_times=False) as fake,
        dated(fake, date) as base_url,
        sc.SendcloudClient(auth=fake.basic_auth, base_url=base_url) as client,
    ):
        fake.seed(integrations=2, logs_per_integration=10)  # from 2023
        idle = [b async for b in client.logs.watch(start="all", lookback=lookback, once=True)]
        state = idle[-1].state
        assert state.mark is not None
        assert state.low == state.mark - timedelta(seconds=lookback)  # not closed
        fake.commit_delay = (0.0, lookback / 2)
        done = asyncio.Event()

        async def producer() -> None:
            await produce(fake, 60, ties=True, seed=len(order))
            while fake.hidden_logs:  # noqa: ASYNC110 (the fake has no event for it)
                await asyncio.sleep(0.05)
            done.set()

        task = asyncio.create_task(producer())
        delivered, batches = await restart_after_every_batch(
            client, state, until=done, lookback=lookback
        )
        await task
        every = [record["id"] for record in fake.logs]
    assert len(every) == 80
    before = [log.id or 0 for b in idle for log in b.items]
    assert Counter(before + delivered) == Counter(every)
    assert any(batch.late for batch in batches)


@pytest.mark.parametrize("order", ORDERS)
async def test_the_state_stays_bounded_by_one_window_over_100_000_logs(
    capsys: pytest.CaptureFixture[str], order: str
) -> None:
    """A 100,000-log catch-up with a 10-minute window: the state holds one window's ids."""
    lookback = timedelta(minutes=10)
    async with FakeSendcloud(log_order=order) as fake:
        fake.seed(integrations=10, logs_per_integration=10_000)
        times = [datetime.fromisoformat(r["created_at"]) for r in fake.logs]
        async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
            largest = 0
            held = 0
            seen = 0
            async for batch in client.logs.watch(
                start="all", lookback=lookback, page_size=100, once=True
            ):
                seen += len(batch.items)
                state = batch.state
                largest = max(largest, len(msgspec.json.encode(state)))
                held = max(held, sum(len(ids) for _, ids in state.recent) + len(state.mark_ids))
    # The most logs that any one window of the data holds.
    most, j = 0, 0
    for i, t in enumerate(times):
        while times[j] < t - lookback:
            j += 1
        most = max(most, i - j + 1)
    with capsys.disabled():
        print(f"\n100,000 logs {order}, lookback 10 min: largest state {largest:,} B, {held} ids")
    assert seen == 100_000
    assert held <= most  # bounded by one window, not by the 100,000 logs seen
    assert largest < 64 * most + 1_000


# -- states saved before the lookback window --------------------------------------


def _fixture(order: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{order}.json").read_text())
    return data


@pytest.mark.parametrize("order", ORDERS)
async def test_a_state_saved_by_the_release_before_resumes_exactly_once(order: str) -> None:
    """Every batch state of a version-1 watch (ties included) resumes with the rest, once."""
    saved = _fixture(order)
    async with FakeSendcloud(log_order=order, unique_log_times=False) as fake:
        fake.seed(integrations=2, logs_per_integration=12)
        first = fake.logs[5]["created_at"]
        for _ in range(4):  # as when the fixture was made
            fake.add_log(1, created_at=first, base_url="https://shop.example")
        assert fake.logs == saved["logs"]
        every = [r["id"] for r in fake.logs]
        async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
            before: list[int] = []
            for batch in saved["batches"]:
                before += batch["delivered"]
                raw = json.dumps(batch["state"]).encode()
                assert json.loads(raw)["version"] == 1
                rest = [
                    log.id
                    async for b in client.logs.watch(raw, page_size=5, once=True)
                    for log in b.items
                ]
                assert Counter(before + rest) == Counter(every)


def test_a_version_1_state_loads_with_its_window_at_its_mark() -> None:
    raw = json.dumps(_fixture("oldest_first")["batches"][2]["state"]).encode()
    state = msgspec.json.decode(raw, type=sc.WatchState)
    assert state.version == 1
    from sendcloud_async._sources._watch_state import begin

    upgraded = begin(raw, start="now", integration_id=None)
    assert upgraded.version == sc.WatchState().version == 2
    assert (upgraded.mark, upgraded.mark_ids) == (state.mark, state.mark_ids)
    assert (upgraded.low, upgraded.recent, upgraded.scan) == (state.mark, (), None)
    walking = _fixture("newest_first")["batches"][1]["state"]  # mid-walk, no mark yet
    assert walking["mark"] is None
    resumed = begin(json.dumps(walking).encode(), start="now", integration_id=None)
    assert resumed.walk is not None
    assert resumed.low == resumed.walk.head  # the window starts where the walk ends


# -- bad input ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lookback", "message"),
    [
        (-1, "lookback must be finite seconds >= 0, got -1"),
        (float("inf"), "lookback must be finite seconds >= 0, got inf"),
        (float("nan"), "lookback must be finite seconds >= 0, got nan"),
        (timedelta(seconds=-5), "lookback must be finite seconds >= 0"),
        ("30", "lookback must be seconds or a timedelta, not str"),
        (True, "lookback must be seconds or a timedelta, not bool"),
        (None, "lookback must be seconds or a timedelta, not NoneType"),
    ],
)
async def test_a_bad_lookback_is_refused_before_any_request(
    fake: FakeSendcloud, lookback: Any, message: str
) -> None:
    async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
        with pytest.raises(sc.InvalidInputError) as info:
            client.logs.watch(lookback=lookback)
    assert str(info.value).startswith(message)
    assert fake.requests == []


async def test_a_damaged_window_in_a_state_is_refused() -> None:
    good = sc.WatchState(mark=datetime(2026, 1, 1, tzinfo=UTC))
    raw = msgspec.json.encode(good).replace(b'"recent":[]', b'"recent":[["x",[1]]]')
    from sendcloud_async._sources._watch_state import begin

    with pytest.raises(sc.InvalidInputError, match="state is not a valid WatchState"):
        begin(raw, start="now", integration_id=None)
    v1 = msgspec.json.encode(good).replace(b'"version":2', b'"version":1')
    v1 = v1.replace(b'"scan":null', b'"scan":"2026-01-01T00:00:00Z"')
    with pytest.raises(sc.InvalidInputError, match="version 1 has no lookback window"):
        begin(v1, start="now", integration_id=None)


# -- everywhere the watch runs -------------------------------------------------------


async def test_log_watcher_reports_late_logs_per_batch_and_per_poll() -> None:
    """``LogWatcher(lookback=…)``: NewLogs.late and AccountPolled.late_logs/lateness."""
    events: list[sc.WatchEvent] = []
    async with FakeSendcloud(log_order="newest_first") as fake:
        fake.seed(integrations=1, logs_per_integration=0)
        # A few seconds old: the server's clock keeps the window open (rule 2).
        base = datetime.now(UTC) - timedelta(seconds=3.5)
        for n in range(4):
            fake.add_log(1, created_at=base + timedelta(seconds=n), base_url="https://s.example")
        async with sc.AccountPool(base_url=fake.base_url) as pool:
            store = sc.MemoryWatchStore()
            accounts = {"shop": fake.basic_auth}
            watcher = sc.LogWatcher(
                pool, accounts, store=store, start="all", lookback=timedelta(seconds=5)
            )
            await watcher.run(events.append, once=True)
            late = fake.add_log(
                1, created_at=base + timedelta(seconds=1.5), base_url="https://s.example"
            )
            # 6 s behind the mark: inside the default window, outside the one given.
            fake.add_log(1, created_at=base - timedelta(seconds=3), base_url="https://s.example")
            again = sc.LogWatcher(pool, accounts, store=store, lookback=5)
            await again.run(events.append, once=True)
    new = [e for e in events if isinstance(e, sc.NewLogs)]
    assert [log.id for e in new for log in e.items] == [4, 3, 2, 1, late["id"]]
    assert [log.id for log in new[-1].late] == [late["id"]]
    assert new[-1].lateness == 1.5
    polled = [e for e in events if isinstance(e, sc.AccountPolled)]
    assert [(p.late_logs, p.lateness) for p in polled] == [(0, 0.0), (1, 1.5)]


async def test_log_watcher_refuses_a_bad_lookback(fake: FakeSendcloud) -> None:
    async with sc.AccountPool(base_url=fake.base_url) as pool:
        with pytest.raises(sc.InvalidInputError, match="lookback must be finite seconds >= 0"):
            sc.LogWatcher(pool, {"shop": fake.basic_auth}, store=sc.MemoryWatchStore(), lookback=-3)
    assert fake.requests == []


async def test_logs_watch_lookback_writes_a_late_log_once_and_says_how_late(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """The command line: ``--lookback S``; the late log is appended once and reported."""
    from tests.functional.test_cli import fake_env, run

    fake.seed(integrations=1, logs_per_integration=0)
    base = datetime.now(UTC) - timedelta(seconds=3)  # recent: the window is open (rule 2)
    for n in range(3):
        fake.add_log(1, created_at=base + timedelta(seconds=n), base_url="https://s.example")
    out = tmp_path / "logs.jsonl"
    events = tmp_path / "events.jsonl"
    args = ("logs", "watch", "--out", str(out), "--once", "--lookback", "10")
    first = await run(*args, "--start", "all", env=fake_env(fake))
    assert first.code == 0, first.err
    late = fake.add_log(1, created_at=base + timedelta(seconds=0.5), base_url="https://s.example")
    # 22 s behind the mark: inside the default window, outside the one given.
    fake.add_log(1, created_at=base - timedelta(seconds=20), base_url="https://s.example")
    second = await run(*args, "--events", str(events), env=fake_env(fake))
    assert second.code == 0, second.err
    third = await run(*args, env=fake_env(fake))
    assert third.code == 0, third.err
    written = [msgspec.json.decode(line)["id"] for line in out.read_bytes().splitlines()]
    assert written == [1, 2, 3, late["id"]]
    assert "1 arrived late, the worst 1.5 s behind" in second.out + second.err
    (record,) = [msgspec.json.decode(line) for line in events.read_bytes().splitlines()]
    assert record["event"] == "late_logs"
    assert record["ids"] == [late["id"]]
    assert record["worst_behind_s"] == 1.5


@pytest.mark.parametrize("value", ["-1", "soon", "inf", "nan"])
async def test_logs_watch_refuses_a_bad_lookback_before_any_request(
    fake: FakeSendcloud, tmp_path: Path, value: str
) -> None:
    from tests.functional.test_cli import fake_env, run

    out = tmp_path / "logs.jsonl"
    result = await run("logs", "watch", "--out", str(out), "--lookback", value, env=fake_env(fake))
    assert result.code == 2
    (line,) = result.err_lines
    assert line.startswith("sendcloud-async: error: argument --lookback: ")
    assert ("finite seconds >= 0" in line) or ("not a number" in line)
    assert fake.requests == []
    assert not out.exists()


# -- the fake's late commits ---------------------------------------------------------


async def test_the_fake_lists_a_late_log_only_once_it_is_committed(fake: FakeSendcloud) -> None:
    fake.seed(integrations=1, logs_per_integration=2)
    early = datetime.fromisoformat(fake.logs[0]["created_at"])
    hidden = fake.add_log(1, created_at=early + timedelta(seconds=0.5), visible_after=0.3)
    assert hidden["id"] == 3  # its id is taken when it is added
    assert [r["id"] for r in fake.logs] == [1, 2]
    assert [r["id"] for r in fake.hidden_logs] == [3]
    async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
        assert [log.id async for log in client.logs.iter()] == [1, 2]
        await asyncio.sleep(0.35)
        assert [log.id async for log in client.logs.iter()] == [1, 3, 2]
    assert fake.hidden_logs == []


async def test_the_fakes_commit_delay_is_seeded_and_checked(fake: FakeSendcloud) -> None:
    fake.seed(integrations=1, logs_per_integration=0)
    assert fake.commit_delay is None
    fake.commit_delay = (0.2, 0.4)
    for _ in range(5):
        fake.add_log(1)
    assert fake.logs == []
    assert len(fake.hidden_logs) == 5
    await asyncio.sleep(0.45)
    assert len(fake.logs) == 5
    fake.commit_delay = None
    fake.add_log(1)
    assert len(fake.logs) == 6
    bad_values: list[Any] = [(0.5, 0.1), (-1.0, 1.0), 3.0, (1.0,), (1, 2, 3), ("a", "b"), "12"]
    for bad in bad_values:
        with pytest.raises(ValueError, match="commit_delay must be"):
            fake.commit_delay = bad
    with pytest.raises(ValueError, match="visible_after must be seconds >= 0"):
        fake.add_log(1, visible_after=-1)
    assert len(fake.logs) == 6  # nothing was added by the refused calls
