"""FakeSendcloud's fault injection (``inject``, ``chaos``, counters), seen from plain aiohttp."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud, Fault, InjectedFault, ScriptedResponse

AUTH = {"Authorization": "Basic " + base64.b64encode(b"fake-public-key:fake-secret-key").decode()}
LOG = {"base_url": "https://shop.example"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session with the fake's Basic credentials."""
    async with aiohttp.ClientSession(headers=AUTH) as session:
        yield session


async def status_of(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> int:
    """The status of one request, its body read."""
    async with http.request(method, url, **kw) as resp:
        await resp.read()
        return resp.status


# -- Fault values ---------------------------------------------------------------------------


def test_fault_names() -> None:
    """Each fault's name is its key in chaos rates and in fault_counts."""
    assert Fault.status(503).name == "status_503"
    assert Fault.delay(0.5).name == "delay"
    assert Fault.drop_before_read().name == "drop_before_read"
    assert Fault.drop_after_read().name == "drop_after_read"
    assert Fault.truncated_body().name == "truncated_body"
    assert Fault.revoke_token().name == "revoke_token"
    assert Fault.status(503) == Fault.status(503)


def test_fault_kind_is_checked() -> None:
    """A fault built by hand must be one of the known kinds."""
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("status")  # a status fault needs its code: use Fault.status(code)


@pytest.mark.parametrize("code", [99, 600, True, "503"])
def test_fault_status_checks_code(code: Any) -> None:
    """A status fault needs an HTTP status code."""
    with pytest.raises(ValueError, match="code must be an HTTP status"):
        Fault.status(code)


def test_fault_delay_checks_seconds() -> None:
    """A delay must be a finite, non-negative number."""
    with pytest.raises(ValueError, match="seconds"):
        Fault.delay(-1)
    with pytest.raises(ValueError, match="seconds"):
        Fault.delay(float("inf"))
    with pytest.raises(TypeError):
        Fault.delay("1")  # type: ignore[arg-type]


async def test_inject_checks_its_arguments(fake: FakeSendcloud) -> None:
    """Paths start with '/' and hold no query; only Fault values are queued."""
    with pytest.raises(ValueError, match="path"):
        fake.inject("GET", "integrations", Fault.status(500))
    with pytest.raises(ValueError, match="path"):
        fake.inject("GET", "/integrations?x=1", Fault.status(500))
    with pytest.raises(TypeError, match="expected Fault"):
        fake.inject("GET", "/integrations", ScriptedResponse(500))  # type: ignore[arg-type]


# -- each kind of fault ---------------------------------------------------------------------


async def test_status_fault_serves_status_headers_and_body(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """A status fault answers as given (JSON:API error by default) without processing."""
    fake.add_integration(id=1)
    fake.inject(
        "POST",
        "/integrations/{id}/logs",
        Fault.status(429, headers={"Retry-After": "3"}),
        Fault.status(502, body="<html>bad gateway</html>", headers={"Content-Type": "text/html"}),
    )
    url = fake.base_url + "/integrations/1/logs"
    async with http.post(url, json=LOG) as resp:
        assert (resp.status, resp.headers["Retry-After"]) == (429, "3")
        body = await resp.json()
        assert body["errors"][0]["code"] == "injected_fault"
    async with http.post(url, json=LOG) as resp:
        assert resp.status == 502
        assert resp.headers["Content-Type"] == "text/html"
        assert await resp.text() == "<html>bad gateway</html>"
    assert fake.logs == []  # neither was processed
    assert await status_of(http, "POST", url, json=LOG) == 201
    assert len(fake.requests) == 3  # faulted requests are journalled too
    assert fake.fault_counts == {"status_429": 1, "status_502": 1}


async def test_delay_fault_then_normal_answer(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """A delay holds the normal answer back."""
    fake.inject("GET", "/integrations", Fault.delay(0.2))
    started = time.perf_counter()
    assert await status_of(http, "GET", fake.base_url + "/integrations") == 200
    assert time.perf_counter() - started >= 0.2


async def test_drop_before_read_processes_nothing(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """The connection closes with no answer and nothing stored; the request is journalled."""
    fake.add_integration(id=1)
    fake.inject("POST", "/integrations/1/logs", Fault.drop_before_read())
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await status_of(http, "POST", fake.base_url + "/integrations/1/logs", json=LOG)
    assert fake.logs == []
    assert [r.method for r in fake.requests] == ["POST"]
    assert fake.injected_faults == [
        InjectedFault("POST", "/integrations/1/logs", "drop_before_read")
    ]


async def test_drop_after_read_processes_then_drops(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """The request takes effect (the log is stored) but no answer comes back."""
    fake.add_integration(id=1)
    fake.inject("POST", "/integrations/1/logs", Fault.drop_after_read())
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await status_of(http, "POST", fake.base_url + "/integrations/1/logs", json=LOG)
    assert [log["base_url"] for log in fake.logs] == ["https://shop.example"]


async def test_truncated_body_promises_more_than_it_sends(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """The real status and Content-Length arrive, then half the body and a closed connection."""
    fake.seed(integrations=1, logs_per_integration=20)
    fake.inject("GET", "/integrations/logs", Fault.truncated_body())
    async with http.get(fake.base_url + "/integrations/logs") as resp:
        assert resp.status == 200
        assert resp.content_length is not None
        assert resp.content_length > 100
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    assert await status_of(http, "GET", fake.base_url + "/integrations/logs") == 200


async def test_revoke_token_fault_needs_a_bearer_token(fake: FakeSendcloud) -> None:
    """The bearer token of the request is revoked (401); a Basic request is left alone."""
    auth = fake.oauth2_credentials
    async with sc.SendcloudClient(auth=auth, base_url=fake.base_url) as client:
        await client.integrations.list()
        first = fake.issued_tokens[0]
        fake.inject("GET", "/integrations", Fault.revoke_token())
        await client.integrations.list()  # 401, a new token, one replay
    assert fake.revoke_tokens(first) == 0  # already revoked by the fault
    assert len(fake.issued_tokens) == 2
    assert [r.auth_scheme for r in fake.requests if r.path == "/integrations"] == ["bearer"] * 3
    assert fake.fault_counts == {"revoke_token": 1}
    async with aiohttp.ClientSession(headers=AUTH) as http:
        fake.inject("GET", "/integrations", Fault.revoke_token())
        assert await status_of(http, "GET", fake.base_url + "/integrations") == 200
    assert fake.fault_counts == {"revoke_token": 1}  # nothing to revoke: not a fault


# -- matching and ordering ------------------------------------------------------------------


async def test_faults_queue_per_route_concrete_before_template(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """Faults are taken in order; a concrete path's queue before its template's."""
    fake.add_integration(id=1)
    fake.add_integration(id=2)
    fake.inject("GET", "/integrations/{id}", Fault.status(500), Fault.status(502))
    fake.inject("get", "/api/v3/integrations/2", Fault.status(418))
    base = fake.base_url + "/integrations/"
    assert await status_of(http, "GET", base + "2") == 418
    assert await status_of(http, "GET", base + "2") == 500
    assert await status_of(http, "GET", base + "1") == 502
    assert await status_of(http, "GET", base + "1") == 200


async def test_faults_and_scripts_are_one_queue(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """Scripted responses and injected faults for a route are served in the order queued."""
    fake.script("GET", "/integrations", ScriptedResponse(418))
    fake.inject("GET", "/integrations", Fault.status(503))
    fake.script("GET", "/integrations", ScriptedResponse(207, body={"data": []}))
    assert await status_of(http, "GET", fake.base_url + "/integrations") == 418
    assert await status_of(http, "GET", fake.base_url + "/integrations") == 503
    assert await status_of(http, "GET", fake.base_url + "/integrations") == 207
    assert await status_of(http, "GET", fake.base_url + "/integrations") == 200
    assert fake.fault_counts == {"status_503": 1}  # a scripted answer is not a fault


async def test_token_endpoint_can_be_faulted(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """A path outside the API (the token endpoint) is matched as is."""
    fake.inject("POST", "/oauth2/token/", Fault.status(503))
    assert await status_of(http, "POST", fake.token_url, data=b"grant_type=x") == 503


# -- chaos ----------------------------------------------------------------------------------


async def _chaos_sequence(seed: int) -> list[str]:
    """The fault names 60 GETs meet under chaos with ``seed``."""
    async with FakeSendcloud() as fake, aiohttp.ClientSession(headers=AUTH) as http:
        fake.chaos(seed, {"status_503": 0.2, "status_429": 0.2, "delay": 0.1}, delay=0)
        for _ in range(60):
            await status_of(http, "GET", fake.base_url + "/integrations")
        return [f.fault for f in fake.injected_faults]


async def test_chaos_is_reproducible_per_seed() -> None:
    """The same seed and requests give the same faults; another seed gives others."""
    one, two, other = await asyncio.gather(
        _chaos_sequence(1), _chaos_sequence(1), _chaos_sequence(2)
    )
    assert one == two
    assert one != other
    assert {"status_503", "status_429", "delay"} <= set(one)


async def test_chaos_rates_are_respected(fake: FakeSendcloud, http: aiohttp.ClientSession) -> None:
    """Observed fault frequencies are close to the rates asked for."""
    fake.chaos(seed=3, rates={"status_500": 0.2, "status_504": 0.1})
    statuses = [await status_of(http, "GET", fake.base_url + "/integrations") for _ in range(600)]
    assert 0.15 < statuses.count(500) / 600 < 0.25
    assert 0.06 < statuses.count(504) / 600 < 0.14
    counts = fake.fault_counts
    assert counts == {"status_500": statuses.count(500), "status_504": statuses.count(504)}


async def test_chaos_retry_after_and_stop(fake: FakeSendcloud, http: aiohttp.ClientSession) -> None:
    """retry_after is sent on chaos 429s; chaos(None) stops injecting."""
    fake.chaos(seed=1, rates={"status_429": 1.0}, retry_after=2)
    async with http.get(fake.base_url + "/integrations") as resp:
        assert (resp.status, resp.headers["Retry-After"]) == (429, "2")
    fake.chaos(None)
    assert await status_of(http, "GET", fake.base_url + "/integrations") == 200
    assert fake.fault_counts == {"status_429": 1}


async def test_chaos_routes_limit_where_faults_happen(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """With routes, only those are faulted; by default the token endpoint never is."""
    fake.add_integration(id=1)
    fake.chaos(seed=1, rates={"status_503": 1.0}, routes=["GET /integrations/{id}"])
    assert await status_of(http, "GET", fake.base_url + "/integrations/1") == 503
    assert await status_of(http, "PATCH", fake.base_url + "/integrations/1", json={}) == 204
    assert await status_of(http, "GET", fake.base_url + "/integrations") == 200
    fake.chaos(seed=1, rates={"status_503": 1.0})
    assert await status_of(http, "GET", fake.base_url + "/integrations") == 503
    form = {"grant_type": "client_credentials"}
    secret = base64.b64encode(f"{fake.client_id}:{fake.client_secret}".encode()).decode()
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {secret}"}) as anonymous:
        assert await status_of(anonymous, "POST", fake.token_url, data=form) == 200


@pytest.mark.parametrize(
    ("rates", "message"),
    [
        ({"status_503": 0.7, "drop_after_read": 0.4}, "add up to"),
        ({"status_503": -0.1}, "from 0 to 1"),
        ({"status_503": True}, "from 0 to 1"),
        ({"explode": 0.1}, "unknown fault kind"),
        ({"status_abc": 0.1}, "unknown fault kind"),
        ({}, "needs rates"),
    ],
)
async def test_chaos_checks_rates(fake: FakeSendcloud, rates: dict[str, Any], message: str) -> None:
    """Unknown kinds, rates outside 0..1 and sums above 1 are refused."""
    with pytest.raises(ValueError, match=message):
        fake.chaos(seed=1, rates=rates)


async def test_clear_faults_resets_everything(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """clear_faults drops queues, stops chaos and resets the counters."""
    fake.inject("GET", "/integrations", Fault.status(500))
    fake.chaos(seed=1, rates={"status_503": 1.0})
    assert await status_of(http, "GET", fake.base_url + "/integrations") == 500
    assert await status_of(http, "GET", fake.base_url + "/integrations") == 503
    fake.clear_faults()
    assert (fake.fault_counts, fake.injected_faults) == ({}, [])
    assert await status_of(http, "GET", fake.base_url + "/integrations") == 200


async def test_fault_responses_are_exempt_from_spec_validation() -> None:
    """With spec validation on, injected faults are not violations (requests are still checked)."""
    async with FakeSendcloud(validate_spec=True) as fake:
        fake.add_integration(id=1)
        fake.inject("GET", "/integrations/1", Fault.status(503, body=b"not json"))
        # aiohttp resends a dropped GET once by itself, hence two drops.
        drop = Fault.drop_after_read()
        fake.inject("GET", "/integrations/1", drop, drop, Fault.truncated_body())
        async with aiohttp.ClientSession(headers=AUTH) as http:
            url = fake.base_url + "/integrations/1"
            assert await status_of(http, "GET", url) == 503
            for _ in range(2):
                with pytest.raises(aiohttp.ClientError):
                    await status_of(http, "GET", url)
        assert fake.spec_violations == []
        assert fake.fault_counts == {"status_503": 1, "drop_after_read": 2, "truncated_body": 1}


async def test_closing_with_a_delay_in_flight_is_clean() -> None:
    """A client giving up during a delay fault leaves nothing behind when the fake closes."""
    async with FakeSendcloud() as fake:
        fake.inject("GET", "/integrations", Fault.delay(5))
        async with aiohttp.ClientSession(headers=AUTH, timeout=aiohttp.ClientTimeout(0.1)) as http:
            with pytest.raises(TimeoutError):
                await status_of(http, "GET", fake.base_url + "/integrations")
        started = time.perf_counter()
    assert time.perf_counter() - started < 2
