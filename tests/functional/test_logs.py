"""client.logs: paging through Link headers, resuming, creating — over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from datetime import UTC, datetime, timedelta, timezone

import aiohttp
import pytest

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud, ScriptedResponse


async def settle(connector: aiohttp.BaseConnector) -> None:
    """Let asyncio finalize dropped generators: wait (≤ 1 s) for idle connections and tasks."""
    for _ in range(100):
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if not connector._acquired and not others:
            return
        await asyncio.sleep(0.01)


async def test_iter_walks_every_page_in_order(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """iter() yields every log exactly once, in the server's order, across pages."""
    fake.seed(integrations=2, logs_per_integration=120, seed=3)
    ids = [log.id async for log in client.logs.iter(page_size=50)]
    assert ids == [entry["id"] for entry in fake.logs]
    assert len(ids) == 240
    assert len(fake.requests) == 5  # 50 + 50 + 50 + 50 + 40
    # every cursor the SDK sent had its '+' percent-encoded
    for req in fake.requests[1:]:
        assert "%2B" in req.raw_path
        assert "+" not in req.raw_path


async def test_iter_for_one_integration(fake: FakeSendcloud, client: sc.SendcloudClient) -> None:
    """integration_id= selects /integrations/{id}/logs and only that integration's logs."""
    fake.seed(integrations=3, logs_per_integration=30, seed=4)
    target = sorted(fake.integrations)[1]
    logs = [log async for log in client.logs.iter(integration_id=target, page_size=7)]
    assert {log.integration_id for log in logs} == {target}
    assert len(logs) == 30
    assert all(r.path == f"/integrations/{target}/logs" for r in fake.requests)


async def test_iter_unknown_integration_raises(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """A 404 on the first page surfaces as NotFoundError from the iterator."""
    with pytest.raises(sc.NotFoundError):
        async for _ in client.logs.iter(integration_id=424242):
            pass


async def test_pages_next_cursor_resumes_exactly(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """Passing a page's next_cursor back as cursor= continues right after that page."""
    fake.seed(integrations=1, logs_per_integration=95, seed=5)
    first: list[int | None] = []
    cursor = None
    async for page in client.logs.pages(page_size=20):
        first.extend(log.id for log in page.items)
        cursor = page.next_cursor
        assert page.next_url is not None
        assert page.next_cursor is not None
        break
    assert len(first) == 20
    rest = [log.id async for log in client.logs.iter(page_size=20, cursor=cursor)]
    assert first + rest == [entry["id"] for entry in fake.logs]


async def test_last_page_has_no_cursor(fake: FakeSendcloud, client: sc.SendcloudClient) -> None:
    """The final LogPage has next_cursor and next_url set to None."""
    fake.seed(integrations=1, logs_per_integration=10, seed=6)
    pages = [page async for page in client.logs.pages(page_size=10)]
    assert len(pages) == 1
    assert pages[0].next_cursor is None
    assert pages[0].next_url is None
    assert len(pages[0].items) == 10


async def test_cursor_datetime_is_sent_with_encoded_offset(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """An aware datetime cursor reaches the server as ISO 8601 with '+' as %2B."""
    fake.seed(integrations=1, logs_per_integration=40, seed=7)
    tz = timezone(timedelta(hours=1))
    pivot = datetime.fromisoformat(fake.logs[9]["created_at"]).astimezone(tz)
    logs = [log async for log in client.logs.iter(cursor=pivot, page_size=100)]
    assert [log.id for log in logs] == [e["id"] for e in fake.logs[10:]]
    raw = fake.requests[0].raw_path
    assert "cursor=" + pivot.isoformat().replace("+", "%2B") in raw
    assert fake.requests[0].query["cursor"] == pivot.isoformat()


async def test_cursor_str_is_percent_encoded(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """A string cursor is sent as given, percent-encoded ('+' never becomes a space)."""
    fake.seed(integrations=1, logs_per_integration=5, seed=8)
    cursor = "2000-01-01T00:00:00+01:00"
    logs = [log async for log in client.logs.iter(cursor=cursor)]
    assert len(logs) == 5
    assert fake.requests[0].query["cursor"] == cursor
    assert "cursor=2000-01-01T00:00:00%2B01:00" in fake.requests[0].raw_path


async def test_naive_datetime_cursor_refused(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """A naive datetime cursor raises InvalidInputError at call time; nothing is sent."""
    with pytest.raises(sc.InvalidInputError, match="aware"):
        client.logs.iter(cursor=datetime(2023, 1, 1))
    assert fake.requests == []


@pytest.mark.parametrize("size", [0, 101, -1, True, "10", 2.5])
async def test_bad_page_size_refused(
    fake: FakeSendcloud, client: sc.SendcloudClient, size: object
) -> None:
    """page_size outside 1..100 (or not an int) is refused at call time; nothing is sent."""
    with pytest.raises(sc.InvalidInputError, match="page_size"):
        client.logs.pages(page_size=size)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="page_size"):
        client.logs.iter(page_size=size)  # type: ignore[arg-type]
    assert fake.requests == []


async def test_early_break_leaves_nothing_open(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """Breaking out of async for leaves no open response or warning; the client keeps working."""
    fake.seed(integrations=1, logs_per_integration=300, seed=9)
    gen = client.logs.iter(page_size=10)
    async for _ in gen:
        break
    await gen.aclose()
    gen2 = client.logs.iter(page_size=10)
    async for _ in gen2:
        break
    del gen2
    gc.collect()  # asyncio's async-generator finalizer schedules aclose() as a task
    session = client._transport.session()
    connector = session.connector
    assert connector is not None
    await settle(connector)
    assert connector._acquired == set()  # no connection held by a half-read response
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    assert len([log async for log in client.logs.iter(page_size=100)]) == 300


async def test_foreign_next_link_is_refused(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """A next link on another origin raises SendcloudError and nothing is sent there."""
    fake.seed(integrations=1, logs_per_integration=3, seed=10)
    body = {"data": fake.logs[:1]}
    for origin in ("http://127.0.0.2:1", "https://127.0.0.1", "http://evil.example"):
        fake.script(
            "GET",
            "/integrations/logs",
            ScriptedResponse(
                body=body,
                headers={"Link": f'<{origin}/api/v3/integrations/logs?cursor=x>; rel="next"'},
            ),
        )
        pages = client.logs.pages()
        with pytest.raises(sc.SendcloudError, match="another origin"):
            async for _ in pages:
                pass
    assert len(fake.requests) == 3


async def test_relative_next_link_is_resolved(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """A relative Link target is resolved against the response URL and followed."""
    fake.seed(integrations=1, logs_per_integration=4, seed=11)
    cursor = fake.logs[1]["created_at"].replace("+", "%2B")
    fake.script(
        "GET",
        "/integrations/logs",
        ScriptedResponse(
            body={"data": fake.logs[:2]},
            headers={"Link": f"<logs?cursor={cursor}&page_size=2>; REL=NEXT"},
        ),
    )
    ids = [log.id async for log in client.logs.iter(page_size=2)]
    assert ids == [e["id"] for e in fake.logs]
    assert fake.requests[1].path == "/integrations/logs"
    assert fake.requests[1].query["cursor"] == fake.logs[1]["created_at"]


async def test_multi_link_headers_and_multi_rel(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """Several Link headers and a multi-valued rel are understood."""
    fake.seed(integrations=1, logs_per_integration=4, seed=12)
    cursor = fake.logs[1]["created_at"].replace("+", "%2B")
    nxt = f"{fake.base_url}/integrations/logs?cursor={cursor}"
    fake.script(
        "GET",
        "/integrations/logs",
        ScriptedResponse(
            body={"data": fake.logs[:2]},
            headers={
                "Link": f'<{fake.base_url}/x>; rel=prev, <{nxt}>; title="a, b; c"; rel="last next"'
            },
        ),
    )
    ids = [log.id async for log in client.logs.iter()]
    assert ids == [e["id"] for e in fake.logs]


async def test_literal_plus_in_link_is_sent_as_2b(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """A raw '+' in the server's Link query is re-encoded as %2B, not sent as a space."""
    fake.seed(integrations=1, logs_per_integration=4, seed=13)
    raw_cursor = fake.logs[1]["created_at"]  # contains a literal '+'
    assert "+" in raw_cursor
    fake.script(
        "GET",
        "/integrations/logs",
        ScriptedResponse(
            body={"data": fake.logs[:2]},
            headers={"Link": f"<{fake.base_url}/integrations/logs?cursor={raw_cursor}>; rel=next"},
        ),
    )
    pages = [page async for page in client.logs.pages()]
    assert pages[0].next_cursor == raw_cursor
    assert [log.id for page in pages for log in page.items] == [e["id"] for e in fake.logs]
    assert "%2B" in fake.requests[1].raw_path


async def test_repeated_next_link_stops(fake: FakeSendcloud, client: sc.SendcloudClient) -> None:
    """A next link that repeats stops the walk with an error instead of looping forever."""
    fake.seed(integrations=1, logs_per_integration=2, seed=14)
    link = {"Link": f'<{fake.base_url}/integrations/logs?cursor=2023-03-01T00:00:00Z>; rel="next"'}
    for _ in range(3):
        fake.script("GET", "/integrations/logs", ScriptedResponse(body={"data": []}, headers=link))
    with pytest.raises(sc.SendcloudError, match="already visited"):
        async for _ in client.logs.pages():
            pass
    assert len(fake.requests) == 2


async def test_malformed_log_page_is_decode_error(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """A page that does not fit the schema raises DecodeError naming the bad field."""
    fake.script("GET", "/integrations/logs", ScriptedResponse(body={"data": [{"id": "x"}]}))
    with pytest.raises(sc.DecodeError, match=r"\$\.data\[0\]"):
        async for _ in client.logs.iter():
            pass


async def test_create_log(fake: FakeSendcloud, client: sc.SendcloudClient) -> None:
    """create() posts only the passed fields and returns the stored IntegrationLog."""
    integration = fake.add_integration()
    when = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    log = await client.logs.create(
        integration["id"],
        base_url="https://shop.example",
        method="POST",
        response_code=502,
        response={"headers": {"Server": "nginx"}, "body": "<html>bad gateway</html>"},
        request=sc.LogRequest(payload={"order": 1}),
        created_at=when,
        exception="upstream failed",
    )
    assert isinstance(log, sc.IntegrationLog)
    assert log.integration_id == integration["id"]
    assert log.response is not None
    assert log.response.body == "<html>bad gateway</html>"
    assert log.created_at == when
    sent = fake.requests[-1].json
    assert sent == {
        "base_url": "https://shop.example",
        "method": "POST",
        "response_code": 502,
        "response": {"headers": {"Server": "nginx"}, "body": "<html>bad gateway</html>"},
        "request": {"payload": {"order": 1}},
        "created_at": "2024-05-01T12:00:00+02:00",
        "exception": "upstream failed",
    }
    assert any(e["id"] == log.id for e in fake.logs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_url": ""}, "base_url must not be empty"),
        ({"base_url": None}, "base_url must be a str"),
        ({"base_url": "https://x", "response_code": -1}, "response_code"),
        ({"base_url": "https://x", "response_code": "500"}, "response_code"),
        ({"base_url": "https://x", "created_at": datetime(2024, 1, 1)}, "aware"),
        ({"base_url": "https://x", "response": 5}, "response must be"),
        ({"base_url": "https://x", "request": {"headers": 5}}, "request"),
        ({"base_url": "https://x", "method": 5}, "method must be"),
    ],
)
async def test_create_bad_input_sends_nothing(
    fake: FakeSendcloud, client: sc.SendcloudClient, kwargs: dict[str, object], message: str
) -> None:
    """Bad create() arguments raise InvalidInputError before any request."""
    with pytest.raises(sc.InvalidInputError, match=message):
        await client.logs.create(1, **kwargs)  # type: ignore[arg-type]
    assert fake.requests == []


async def test_create_server_rejects_unknown_integration(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """create() for an unknown integration raises NotFoundError and is not retried."""
    with pytest.raises(sc.NotFoundError):
        await client.logs.create(777, base_url="https://x", created_at=datetime.now(UTC))
    assert len(fake.requests) == 1


async def test_read_ahead_is_bounded(fake: FakeSendcloud, client: sc.SendcloudClient) -> None:
    """With read_ahead=N, at most N pages are fetched beyond the one being consumed."""
    fake.seed(integrations=1, logs_per_integration=200, seed=15)
    for depth in (0, 1, 3):
        fake.clear_requests()
        async with contextlib.aclosing(client.logs.pages(page_size=10, read_ahead=depth)) as pages:
            async for _ in pages:
                await asyncio.sleep(0.2)  # a slow consumer: the producer must wait for it
                break
        assert len(fake.requests) == 1 + depth


async def test_read_ahead_yields_same_pages(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """Every read_ahead depth yields the same pages, cursors and logs as sequential paging."""
    fake.seed(integrations=2, logs_per_integration=55, seed=16)
    results = []
    for depth in (0, 1, 4, 16):
        pages = [p async for p in client.logs.pages(page_size=10, read_ahead=depth)]
        results.append([(p.next_cursor, [log.id for log in p.items]) for p in pages])
    assert all(r == results[0] for r in results)
    assert len(results[0]) == 11


async def test_read_ahead_error_comes_after_earlier_pages(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """A failure while fetching ahead is raised only after the pages fetched before it."""
    fake.seed(integrations=1, logs_per_integration=30, seed=17)
    nxt = fake.logs[9]["created_at"].replace("+", "%2B")
    fake.script(
        "GET",
        "/integrations/logs",
        ScriptedResponse(
            body={"data": fake.logs[:10]},
            headers={"Link": f"<{fake.base_url}/integrations/logs?cursor={nxt}>; rel=next"},
        ),
        ScriptedResponse(status=404, body={"errors": [{"status": 404, "code": "not_found"}]}),
    )
    seen: list[int | None] = []

    async def collect() -> None:
        async for page in client.logs.pages(read_ahead=2):
            seen.extend(log.id for log in page.items)

    with pytest.raises(sc.NotFoundError):
        await collect()
    assert seen == [e["id"] for e in fake.logs[:10]]


async def test_cancel_mid_pagination_with_read_ahead(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """Cancelling a consumer mid-pagination cancels the prefetch and releases its connection."""
    fake.seed(integrations=1, logs_per_integration=50, seed=18)
    fake.script(
        "GET",
        "/integrations/logs",
        ScriptedResponse(
            status=200,
            body={
                "data": fake.logs[:5],
            },
            headers={
                "Link": f"<{fake.base_url}/integrations/logs?cursor=2023-03-01T00:00:00Z>; rel=next"
            },
        ),
    )
    fake.script("GET", "/integrations/logs", ScriptedResponse(body={"data": []}, delay=5.0))
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in client.logs.pages(read_ahead=1):
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(consume())
    await started.wait()
    await asyncio.sleep(0.1)  # the prefetch of page 2 is now in flight (delayed 5 s)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The dropped generator is closed by asyncio's finalizer within a few loop turns.
    connector = client._transport.session().connector
    assert connector is not None
    await settle(connector)
    assert connector._acquired == set()
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    assert len(await client.integrations.list()) == 1


@pytest.mark.parametrize("depth", [-1, 17, True, "2"])
async def test_bad_read_ahead_refused(
    fake: FakeSendcloud, client: sc.SendcloudClient, depth: object
) -> None:
    """read_ahead outside 0..16 (or not an int) is refused at call time; nothing is sent."""
    with pytest.raises(sc.InvalidInputError, match="read_ahead"):
        client.logs.iter(read_ahead=depth)  # type: ignore[arg-type]
    assert fake.requests == []
