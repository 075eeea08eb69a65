"""``webhooks.aiohttp_handler`` served by a real aiohttp.web server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import sendcloud_async as sc
from sendcloud_async import webhooks
from tests._ledger_stores import UNAVAILABLE, ScriptedStore, meet_alike
from tests._serve import serving

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "webhooks"
SECRET = "whsec-receiver-secret-9f2c"
PATH = "/sendcloud/webhook"

EVENT_TYPES: dict[str, type[Any]] = {
    "integration_connected": webhooks.IntegrationConnected,
    "integration_updated": webhooks.IntegrationUpdated,
    "integration_deleted": webhooks.IntegrationDeleted,
    "parcel_status_changed": webhooks.ParcelStatusChanged,
    "return_created": webhooks.ReturnCreated,
}


class Recorder:
    """An async callback that records the events it was given."""

    def __init__(self) -> None:
        """Start with no events."""
        self.events: list[webhooks.WebhookEvent] = []

    async def __call__(self, event: webhooks.WebhookEvent) -> None:
        """Record ``event``."""
        self.events.append(event)


@asynccontextmanager
async def serve(
    callback: Callable[[webhooks.WebhookEvent], Any],
    *,
    max_body_size: int = 1024 * 1024,
    client_max_size: int = 1024**2,
    secret: str | tuple[str, ...] = SECRET,
    max_age: float | None = None,
    ledger: webhooks.EventLedger | None = None,
) -> AsyncIterator[str]:
    """Run an app with the webhook handler on an ephemeral loopback port; yield its URL."""
    app = web.Application(client_max_size=client_max_size)
    handler = webhooks.aiohttp_handler(
        secret, callback, max_body_size=max_body_size, max_age=max_age, ledger=ledger
    )
    app.router.add_post(PATH, handler)
    async with serving(app, PATH) as url:
        yield url


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp client session."""
    async with aiohttp.ClientSession() as s:
        yield s


def signed(body: bytes) -> dict[str, str]:
    """Headers carrying a correct signature for ``body``."""
    return {webhooks.SIGNATURE_HEADER: webhooks.sign(body, SECRET)}


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: Any,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """POST ``body`` and return the status and the response text."""
    async with session.post(url, data=body, headers=headers) as resp:
        return resp.status, await resp.text()


@pytest.mark.parametrize("action", sorted(EVENT_TYPES))
async def test_signed_event_is_decoded_handed_to_callback_and_answered_200(
    session: aiohttp.ClientSession, action: str
) -> None:
    """A correctly signed event reaches the callback decoded; the answer is 200."""
    body = (FIXTURES / f"{action}.json").read_bytes()
    recorder = Recorder()
    async with serve(recorder) as url:
        status, text = await post(session, url, body, signed(body))
    assert status == 200
    assert json.loads(text) == {"status": "ok"}
    assert len(recorder.events) == 1
    event = recorder.events[0]
    assert type(event) is EVENT_TYPES[action]
    assert event.action == action
    assert event == webhooks.parse_event(body, signature=webhooks.sign(body, SECRET), secret=SECRET)


async def test_unknown_event_is_acknowledged(session: aiohttp.ClientSession) -> None:
    """An action the SDK does not know still gets 200 and an UnknownEvent."""
    body = b'{"action": "label_printed", "timestamp": 1700000000, "label": {"id": 9}}'
    recorder = Recorder()
    async with serve(recorder) as url:
        status, _ = await post(session, url, body, signed(body))
    assert status == 200
    [event] = recorder.events
    assert isinstance(event, webhooks.UnknownEvent)
    assert event.payload["label"] == {"id": 9}


async def test_exact_raw_bytes_are_verified(session: aiohttp.ClientSession) -> None:
    """Odd spacing, escapes and key order survive: the handler hashes what was received."""
    body = (
        b'{ "timestamp" :1525271885993,\n "action":"integration_connected",'
        b'"integration":{"shop_name":"Caf\\u00e9 \xc3\xa9","id":1}}'
    )
    recorder = Recorder()
    async with serve(recorder) as url:
        status, _ = await post(session, url, body, signed(body))
    assert status == 200
    [event] = recorder.events
    assert isinstance(event, webhooks.IntegrationConnected)
    assert event.integration is not None
    assert event.integration.shop_name == "Café é"


async def test_header_name_and_signature_case_do_not_matter(
    session: aiohttp.ClientSession,
) -> None:
    """A lower-case header name with an upper-case, padded digest is accepted."""
    body = (FIXTURES / "return_created.json").read_bytes()
    headers = {"sendcloud-signature": f"  {webhooks.sign(body, SECRET).upper()} "}
    recorder = Recorder()
    async with serve(recorder) as url:
        status, _ = await post(session, url, body, headers)
    assert status == 200
    assert len(recorder.events) == 1


BODY = (FIXTURES / "parcel_status_changed.json").read_bytes()
BAD_SIGNATURES: dict[str, dict[str, str]] = {
    "missing": {},
    "blank": {webhooks.SIGNATURE_HEADER: " "},
    "malformed": {webhooks.SIGNATURE_HEADER: "sha256=abc"},
    "wrong secret": {webhooks.SIGNATURE_HEADER: webhooks.sign(BODY, "someone-else")},
    "tampered": {webhooks.SIGNATURE_HEADER: webhooks.sign(BODY + b" ", SECRET)},
}


@pytest.mark.parametrize("case", sorted(BAD_SIGNATURES))
async def test_bad_signature_is_401_without_details(
    session: aiohttp.ClientSession, case: str
) -> None:
    """Missing, malformed or wrong signatures get a bare 401 and never reach the callback."""
    recorder = Recorder()
    async with serve(recorder) as url:
        status, text = await post(session, url, BODY, BAD_SIGNATURES[case])
    assert status == 401
    assert json.loads(text) == {"error": "invalid signature"}
    assert recorder.events == []
    expected = webhooks.sign(BODY, SECRET)
    for secretish in (SECRET, expected, "missing", "malformed", "mismatch", "match"):
        assert secretish not in text


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b"[1, 2, 3]",
        b'{"timestamp": 1}',
        b'{"action": "return_created", "timestamp": 1, "data": {"id": "forty-two"}}',
        b"\xff\xfe",
    ],
)
async def test_undecodable_signed_body_is_400_without_details(
    session: aiohttp.ClientSession, body: bytes
) -> None:
    """A correctly signed body that is not an event gets a bare 400."""
    recorder = Recorder()
    async with serve(recorder) as url:
        status, text = await post(session, url, body, signed(body))
    assert status == 400
    assert json.loads(text) == {"error": "invalid payload"}
    assert recorder.events == []
    for detail in ("Expected", "decode", "$.", "JSON", SECRET):
        assert detail not in text


async def test_bad_signature_wins_over_bad_payload(session: aiohttp.ClientSession) -> None:
    """An unsigned garbage body is 401, not 400: nothing is decoded before verification."""
    recorder = Recorder()
    async with serve(recorder) as url:
        status, _ = await post(session, url, b"garbage", {webhooks.SIGNATURE_HEADER: "0" * 64})
    assert status == 401


async def test_content_length_over_limit_is_413(session: aiohttp.ClientSession) -> None:
    """A declared body larger than ``max_body_size`` is refused with 413."""
    body = b'{"action": "x", "timestamp": 1, "pad": "' + b"a" * 2000 + b'"}'
    recorder = Recorder()
    async with serve(recorder, max_body_size=1000) as url:
        status, text = await post(session, url, body, signed(body))
    assert status == 413
    assert json.loads(text) == {"error": "payload too large"}
    assert recorder.events == []


async def test_chunked_body_over_limit_is_413(session: aiohttp.ClientSession) -> None:
    """A chunked body (no Content-Length) larger than ``max_body_size`` is refused with 413."""
    body = b'{"action": "x", "timestamp": 1, "pad": "' + b"a" * 2000 + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        """The body in 100-byte chunks."""
        for i in range(0, len(body), 100):
            yield body[i : i + 100]

    recorder = Recorder()
    async with (
        serve(recorder, max_body_size=1000) as url,
        session.post(url, data=chunks(), headers=signed(body)) as resp,
    ):
        assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
        status = resp.status
    assert status == 413
    assert recorder.events == []


async def test_app_client_max_size_also_gives_413(session: aiohttp.ClientSession) -> None:
    """When the application's ``client_max_size`` is smaller, its limit answers 413 too."""
    body = b'{"action": "x", "timestamp": 1, "pad": "' + b"a" * 2000 + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        """The body in one chunk, so no Content-Length is sent."""
        yield body

    recorder = Recorder()
    async with serve(recorder, client_max_size=500) as url:
        status, text = await post(session, url, chunks(), signed(body))
    assert status == 413
    assert json.loads(text) == {"error": "payload too large"}
    assert recorder.events == []


async def test_body_exactly_at_limit_is_accepted(session: aiohttp.ClientSession) -> None:
    """``max_body_size`` is inclusive."""
    body = b'{"action": "return_created", "timestamp": 1, "data": {"id": 1}}'
    recorder = Recorder()
    async with serve(recorder, max_body_size=len(body)) as url:
        status, _ = await post(session, url, body, signed(body))
    assert status == 200
    assert len(recorder.events) == 1


async def test_callback_exception_becomes_500_and_server_keeps_serving(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing callback is not swallowed: 500 (so Sendcloud retries), then normal service."""
    body = (FIXTURES / "return_created.json").read_bytes()
    calls: list[webhooks.WebhookEvent] = []

    async def flaky(event: webhooks.WebhookEvent) -> None:
        """Fail on the first delivery, succeed afterwards."""
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("database is down")

    caplog.set_level(logging.CRITICAL, logger="aiohttp.server")
    async with serve(flaky) as url:
        first, first_text = await post(session, url, body, signed(body))
        second, _ = await post(session, url, body, signed(body))
    assert first == 500
    assert "database is down" not in first_text
    assert second == 200
    assert len(calls) == 2


async def test_rejections_are_logged_without_secret_or_signature(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """The reason goes to the ``sendcloud_async.webhooks`` logger; secrets do not."""
    wrong = webhooks.sign(BODY, "someone-else")
    caplog.set_level(logging.INFO, logger="sendcloud_async.webhooks")
    async with serve(Recorder()) as url:
        await post(session, url, BODY, {webhooks.SIGNATURE_HEADER: wrong})
        await post(session, url, b"[]", signed(b"[]"))
    records = [r for r in caplog.records if r.name == "sendcloud_async.webhooks"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING]
    messages = [r.getMessage() for r in records]
    assert "does not match" in messages[0]
    assert "could not decode" in messages[1]
    for message in messages:
        assert SECRET not in message
        assert wrong not in message
        assert webhooks.sign(BODY, SECRET) not in message
        assert webhooks.sign(b"[]", SECRET) not in message


def test_handler_factory_validates_its_arguments() -> None:
    """Bad configuration fails when the handler is built, not on the first event."""
    with pytest.raises(ValueError, match="secret must not be empty"):
        webhooks.aiohttp_handler("", Recorder())
    with pytest.raises(ValueError, match="max_body_size"):
        webhooks.aiohttp_handler(SECRET, Recorder(), max_body_size=0)
    with pytest.raises(sc.InvalidInputError, match="max_body_size"):
        webhooks.aiohttp_handler(SECRET, Recorder(), max_body_size=True)


def test_handler_factory_checks_rotation_max_age_and_ledger() -> None:
    """An empty rotation, a bad max_age or a non-ledger fail when the handler is built."""
    with pytest.raises(ValueError, match="secret must not be empty: give at least one"):
        webhooks.aiohttp_handler((), Recorder())
    with pytest.raises(ValueError, match="max_age must be a positive number of seconds"):
        webhooks.aiohttp_handler(SECRET, Recorder(), max_age=0)
    with pytest.raises(
        sc.InvalidInputError, match="ledger must be an EventLedger or None, got dict"
    ):
        webhooks.aiohttp_handler(SECRET, Recorder(), ledger={})  # type: ignore[arg-type]


NEW, OLD = "whsec-rotated-new", "whsec-rotated-old"


@pytest.mark.parametrize(
    ("signed_with", "status"), [(NEW, 200), (OLD, 200), ("whsec-neither", 401)]
)
async def test_receiver_accepts_both_secrets_during_rotation(
    session: aiohttp.ClientSession, signed_with: str, status: int
) -> None:
    """A receiver given (new, old) accepts either signature and rejects a third one."""
    body = (FIXTURES / "return_created.json").read_bytes()
    recorder = Recorder()
    async with serve(recorder, secret=(NEW, OLD)) as url:
        got, text = await post(
            session, url, body, {webhooks.SIGNATURE_HEADER: webhooks.sign(body, signed_with)}
        )
    assert got == status
    assert len(recorder.events) == (1 if status == 200 else 0)
    for secretish in (NEW, OLD):
        assert secretish not in text


def parcel_body(parcel: int, when: float, status: int = 1) -> bytes:
    """A parcel_status_changed body."""
    return json.dumps(
        {
            "action": "parcel_status_changed",
            "timestamp": when,
            "parcel": {"id": parcel, "status": {"id": status}},
        }
    ).encode()


async def test_event_older_than_max_age_is_400_and_not_handled(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """An event older than max_age is answered 400 "event too old"; a recent one is handled."""
    recorder = Recorder()
    caplog.set_level(logging.WARNING, logger="sendcloud_async.webhooks")
    now = time.time()
    old, recent = parcel_body(1, now - 3600 - 5), parcel_body(1, now - 3600 + 5)
    ledger = webhooks.EventLedger()
    async with serve(recorder, max_age=3600, ledger=ledger) as url:
        status, text = await post(session, url, old, signed(old))
        assert (status, json.loads(text)) == (400, {"error": "event too old"})
        assert (recorder.events, await ledger.size(), ledger.counts) == ([], 0, {})
        status, _ = await post(session, url, recent, signed(recent))
        assert status == 200
    assert len(recorder.events) == 1
    assert ledger.counts == {"new": 1}
    assert any("more than max_age=3600 s" in r.getMessage() for r in caplog.records)


async def test_duplicates_and_stale_events_are_200_without_the_handler(
    session: aiohttp.ClientSession,
) -> None:
    """With a ledger: new is handled; a repeat and an older event are 200 and counted only."""
    recorder = Recorder()
    ledger = webhooks.EventLedger()
    newer, older = parcel_body(7, 2000, status=11), parcel_body(7, 1000, status=3)
    async with serve(recorder, ledger=ledger) as url:
        answers = [await post(session, url, body, signed(body)) for body in (newer, newer, older)]
    assert answers == [
        (200, '{"status": "ok"}'),
        (200, '{"status": "duplicate"}'),
        (200, '{"status": "stale"}'),
    ]
    assert len(recorder.events) == 1
    assert ledger.counts == {"new": 1, "duplicate": 1, "stale": 1}


async def test_handler_failure_is_500_and_the_retry_is_processed(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing handler answers 500 and admits nothing, so Sendcloud's retry is handled."""
    body = parcel_body(7, 1000)
    calls: list[webhooks.WebhookEvent] = []

    async def flaky(event: webhooks.WebhookEvent) -> None:
        """Fail on the first call."""
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("database is down")

    ledger = webhooks.EventLedger()
    caplog.set_level(logging.CRITICAL, logger="aiohttp.server")
    async with serve(flaky, ledger=ledger) as url:
        first, _ = await post(session, url, body, signed(body))
        retry, retry_text = await post(session, url, body, signed(body))
        again, again_text = await post(session, url, body, signed(body))
    assert (first, retry, again) == (500, 200, 200)
    assert json.loads(retry_text) == {"status": "ok"}
    assert json.loads(again_text) == {"status": "duplicate"}
    assert len(calls) == 2
    assert ledger.counts == {"failed": 1, "new": 1, "duplicate": 1}


async def test_concurrent_delivery_of_an_event_in_flight_is_409_then_duplicate(
    session: aiohttp.ClientSession,
) -> None:
    """A second delivery while the first is handled gets 409 + Retry-After; later a duplicate."""
    body = parcel_body(7, 1000)
    entered, go_on = asyncio.Event(), asyncio.Event()
    calls: list[webhooks.WebhookEvent] = []

    async def slow(event: webhooks.WebhookEvent) -> None:
        """Block until told to go on."""
        calls.append(event)
        entered.set()
        await go_on.wait()

    ledger = webhooks.EventLedger()
    async with serve(slow, ledger=ledger) as url:
        first = asyncio.create_task(post(session, url, body, signed(body)))
        try:
            await entered.wait()
            async with (
                asyncio.timeout(5),  # a broken ledger would let it into the blocked handler
                session.post(url, data=body, headers=signed(body)) as resp,
            ):
                second = (resp.status, resp.headers.get("Retry-After"), await resp.json())
            other = parcel_body(7, 999)  # another event of the same parcel waits too
            async with asyncio.timeout(5):
                third = await post(session, url, other, signed(other))
        finally:
            go_on.set()
        assert await first == (200, '{"status": "ok"}')
        retried = await post(session, url, body, signed(body))
    assert second == (409, "60", {"error": "event in progress"})
    assert third[0] == 409
    assert retried == (200, '{"status": "duplicate"}')
    assert len(calls) == 1
    assert ledger.counts == {"new": 1, "in_flight": 2, "duplicate": 1}


# --------------------------------------------------------------------------- one claim path


@pytest.mark.parametrize("step", sorted(UNAVAILABLE))
async def test_the_receiver_and_handling_treat_an_unavailable_store_alike(
    caplog: pytest.LogCaptureFixture, step: str
) -> None:
    """A store that cannot claim, commit or release: handling() and the receiver agree.

    Cannot claim: handling() raises StateUnavailableError before any work and the
    receiver answers 503; cannot commit: the work ran, neither raises nor answers an
    error, both log the same WARNING; cannot release after the work failed: the
    work's error wins (500), both log the same WARNING.
    """

    @asynccontextmanager
    async def ledger() -> AsyncIterator[webhooks.EventLedger]:
        """A ledger over a store that cannot do ``step``."""
        yield webhooks.EventLedger(ScriptedStore(failing=frozenset({step})))

    await meet_alike(step, ledger, caplog)
