"""Property-based tests through the client over a real socket (the pure parts have their own).

The unit tests prove the parsers on their own; these prove the whole path: what
hypothesis generates goes out through aiohttp to a FakeSendcloud (or comes back
from one as a scripted answer) and only typed outcomes come out.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sendcloud_async as sc
from sendcloud_async import webhooks
from sendcloud_async.testing import FakeSendcloud, ScriptedResponse

# One fake and one client serve every example of a test: the health check about
# function-scoped fixtures is about state leaking between examples, and these
# tests look only at the last request or at the exception each example raised.
EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
# Shapes close to a JSON:API error body, so the decoder's corners are reached.
ERROR_OBJECT = st.dictionaries(
    st.sampled_from(["status", "code", "title", "detail", "source", "id", "meta", "links"]),
    JSON | st.sampled_from(["404", 404, "not_found", {"pointer": "/x"}]),
    max_size=6,
)
ERROR_BODY = st.one_of(
    st.builds(lambda e: {"errors": e}, st.lists(ERROR_OBJECT, max_size=3) | ERROR_OBJECT | JSON),
    JSON,
)
STATUS_CLASSES: dict[int, type[sc.APIError]] = {
    400: sc.BadRequestError,
    401: sc.AuthenticationError,
    403: sc.PermissionDeniedError,
    404: sc.NotFoundError,
    429: sc.RateLimitError,
}
# Header values: visible latin-1 text without CR/LF (what an HTTP server can send).
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)


def body_bytes(value: Any) -> bytes:
    """``value`` as JSON bytes."""
    return json.dumps(value).encode()


@pytest.fixture
async def plain_client(fake: FakeSendcloud) -> AsyncIterator[sc.SendcloudClient]:
    """A client that never retries: each example is one request."""
    async with sc.SendcloudClient(
        auth=fake.basic_auth, base_url=fake.base_url, max_retries=0
    ) as client:
        yield client


# -- cursors reach the server unchanged --------------------------------------------------------


@EXAMPLES
@given(cursor=st.text(min_size=1))
async def test_any_string_cursor_reaches_the_server_unchanged(
    fake: FakeSendcloud, plain_client: sc.SendcloudClient, cursor: str
) -> None:
    """Whatever the string (spaces, '+', '&', '%', '#', newlines, emoji), the server reads it."""
    # Most strings are no date-time (off-spec on purpose), and the fake answers them 400.
    with fake.spec.allow_off_spec_requests(), contextlib.suppress(sc.BadRequestError):
        await anext(plain_client.logs.pages(cursor=cursor))
    assert fake.requests[-1].query["cursor"] == cursor
    assert "+" not in fake.requests[-1].raw_path.partition("?")[2]


OFFSETS = st.timedeltas(
    min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
).map(timezone)


@EXAMPLES
@given(when=st.datetimes(timezones=st.timezones() | OFFSETS))
async def test_any_aware_datetime_cursor_reaches_the_server_as_iso_8601(
    fake: FakeSendcloud, plain_client: sc.SendcloudClient, when: datetime
) -> None:
    """An aware datetime arrives as its isoformat(), offset included, never with a space."""
    # Offsets with seconds are not RFC 3339 (off-spec on purpose); the fake takes them.
    with fake.spec.allow_off_spec_requests(), contextlib.suppress(sc.BadRequestError):
        await anext(plain_client.logs.pages(cursor=when), None)
    received = fake.requests[-1].query["cursor"]
    assert received == when.isoformat()
    assert " " not in received


# -- error bodies become typed errors -----------------------------------------------------------


@EXAMPLES
@given(
    status=st.sampled_from([400, 401, 403, 404, 405, 409, 422, 429, 500, 502, 503, 504]),
    body=st.one_of(ERROR_BODY.map(body_bytes), st.binary(max_size=300)),
    content_type=st.sampled_from(["application/json", "text/html", "application/problem+json"]),
    retry_after=st.none() | HEADER_TEXT,
)
async def test_any_error_answer_becomes_the_matching_api_error(
    fake: FakeSendcloud,
    plain_client: sc.SendcloudClient,
    status: int,
    body: bytes,
    content_type: str,
    retry_after: str | None,
) -> None:
    """Any error status with any body and Retry-After raises the APIError subclass for it."""
    headers = {"Content-Type": content_type}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    fake.script("GET", "/integrations", ScriptedResponse(status, body=body, headers=headers))
    with pytest.raises(sc.APIError) as info:
        await plain_client.integrations.list()
    error = info.value
    expected = STATUS_CLASSES.get(status, sc.ServerError if status >= 500 else sc.APIError)
    assert type(error) is expected
    assert error.status == status
    assert all(isinstance(e, sc.ErrorObject) for e in error.errors)
    assert isinstance(str(error), str)
    if isinstance(error, sc.RateLimitError) and error.retry_after is not None:
        assert error.retry_after >= 0


@EXAMPLES
@given(body=st.one_of(JSON.map(body_bytes), st.binary(max_size=200)))
async def test_any_success_body_decodes_or_raises_decode_error(
    fake: FakeSendcloud, plain_client: sc.SendcloudClient, body: bytes
) -> None:
    """A 200 with any body gives models or DecodeError: never another exception."""
    for method, path in (("GET", "/integrations"), ("GET", "/integrations/1")):
        fake.script(method, path, ScriptedResponse(200, body=body))
    try:
        integrations = await plain_client.integrations.list()
    except sc.DecodeError:
        pass
    else:
        assert all(isinstance(i, sc.Integration) for i in integrations)
    try:
        integration = await plain_client.integrations.get(1)
    except sc.DecodeError:
        pass
    else:
        assert isinstance(integration, sc.Integration)


LINKS = st.lists(
    st.one_of(
        HEADER_TEXT,
        st.builds(
            lambda target, rel: f"<{target}>; rel={rel}",
            st.sampled_from(["", "/", "?cursor=a+b", "/api/v3/integrations/logs?cursor=%zz"])
            | HEADER_TEXT,
            st.sampled_from(["next", '"next"', "NEXT", '"prev next"', "last"]),
        ),
    ),
    max_size=3,
)


@EXAMPLES
@given(pages=st.lists(st.tuples(JSON, LINKS), min_size=1, max_size=3))
async def test_any_log_pages_and_links_give_logs_or_a_sendcloud_error(
    fake: FakeSendcloud, plain_client: sc.SendcloudClient, pages: list[tuple[Any, list[str]]]
) -> None:
    """Arbitrary page bodies and Link headers: logs, or a SendcloudError, nothing else."""
    fake.clear_requests()
    for body, links in pages:
        headers = {"Link": ", ".join(links)} if links else None  # several links in one header
        answer = ScriptedResponse(200, body=body_bytes(body), headers=headers)
        fake.script("GET", "/integrations/logs", answer)
    with fake.spec.allow_off_spec_requests():  # garbage links lead to garbage requests
        try:
            # read_ahead=0: no request may still be in flight when the block ends
            pages_ = plain_client.logs.pages(read_ahead=0)
            async with contextlib.aclosing(pages_):
                async for page in pages_:
                    assert all(isinstance(item, sc.IntegrationLog) for item in page.items)
                    if len(fake.requests) >= 4:
                        break
        except sc.SendcloudError:
            pass
    fake._faults.drop_scripts()  # answers left unused must not leak into the next example


# -- webhooks over a socket ------------------------------------------------------------

SECRET = "whsec-property-secret"
ACTIONS = st.sampled_from(
    [
        "integration_connected",
        "integration_updated",
        "integration_deleted",
        "parcel_status_changed",
        "return_created",
        "something_new",
    ]
)
EVENT = st.fixed_dictionaries(
    {"action": ACTIONS | JSON},
    optional={
        "timestamp": JSON | st.integers() | st.floats(),
        "integration": JSON | st.dictionaries(st.sampled_from(["id", "shop_name"]), JSON),
        "parcel": JSON | st.dictionaries(st.sampled_from(["id", "status", "weight"]), JSON),
        "data": JSON | st.dictionaries(st.sampled_from(["id", "items"]), JSON),
        "carrier_status_change_timestamp": JSON,
    },
)


@pytest.fixture
async def receiver() -> AsyncIterator[str]:
    """An aiohttp app with the webhook handler on loopback; yields its URL."""
    events: list[webhooks.WebhookEvent] = []

    async def record(event: webhooks.WebhookEvent) -> None:
        events.append(event)

    app = web.Application()
    app.router.add_post("/hook", webhooks.aiohttp_handler(SECRET, record))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    finally:
        await runner.cleanup()


@EXAMPLES
@given(
    body=st.one_of(EVENT.map(body_bytes), JSON.map(body_bytes), st.binary(max_size=300)),
    signed=st.booleans(),
)
async def test_any_webhook_body_is_answered_200_400_or_401(
    receiver: str, body: bytes, signed: bool
) -> None:
    """Signed: 200 (decoded) or 400 (not an event). Unsigned: 401. Never a 500."""
    signature = webhooks.sign(body, SECRET if signed else "another-secret")
    async with (
        aiohttp.ClientSession() as session,
        session.post(receiver, data=body, headers={webhooks.SIGNATURE_HEADER: signature}) as resp,
    ):
        status = resp.status
    if signed:
        assert status in (200, 400)
        try:
            event = webhooks.parse_event(body, signature=signature, secret=SECRET)
        except sc.DecodeError:
            assert status == 400
        else:
            assert status == 200
            assert isinstance(event.action, str)
    else:
        assert status == 401
