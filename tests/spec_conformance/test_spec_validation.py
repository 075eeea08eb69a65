"""The spec validator of FakeSendcloud: what it catches, what it exempts, and why."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from yarl import URL

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud, ScriptedResponse
from sendcloud_async.testing._spec import (
    KNOWN_SPEC_DEVIATIONS,
    SPEC_FILE,
    SpecCheck,
    SpecValidator,
    SpecViolationError,
    load_spec,
    patched_spec,
    spec_validator,
)

ROOT = Path(__file__).resolve().parents[2]
# The copy inside the package as installed (the source tree, or site-packages).
SHIPPED_YAML = (
    Path(sc.testing.__file__).resolve().parent / "spec" / "sendcloud-v3-integrations-openapi.yml"
)
TEST_YAML = ROOT / "tests" / "spec" / "sendcloud-v3-integrations-openapi.yml"
AUTH = {"Authorization": "Basic " + base64.b64encode(b"fake-public-key:fake-secret-key").decode()}
REGENERATE = (
    "regenerate it: python -c \"import json, yaml; p='sendcloud_async/testing/spec/"
    "sendcloud-v3-integrations-openapi'; json.dump(yaml.safe_load(open(p + '.yml')), "
    "open(p + '.json', 'w'), indent=1, ensure_ascii=False)\""
)


# -- the shipped document -------------------------------------------------------------------


def test_shipped_json_is_the_official_yaml() -> None:
    """The JSON inside the package is exactly the YAML spec the project tracks."""
    with TEST_YAML.open(encoding="utf-8") as f:
        official = yaml.safe_load(f)
    with SHIPPED_YAML.open(encoding="utf-8") as f:
        shipped_yaml = yaml.safe_load(f)
    assert shipped_yaml == official, "sendcloud_async/testing/spec/*.yml differs from tests/spec"
    assert load_spec() == official, f"the shipped JSON is stale; {REGENERATE}"
    assert SPEC_FILE.endswith(".json")


def test_load_spec_returns_fresh_copies() -> None:
    """Callers may edit what load_spec and patched_spec return without affecting others."""
    first = patched_spec()
    first["paths"].clear()
    assert patched_spec()["paths"]
    second = load_spec()
    second["components"].clear()
    assert load_spec()["components"]


# -- the deviations ---------------------------------------------------------------------------


def test_every_deviation_is_named_once_and_explained() -> None:
    """Deviations have unique names and a reason a reader can check against the spec."""
    names = [d.name for d in KNOWN_SPEC_DEVIATIONS]
    assert len(names) == len(set(names))
    for deviation in KNOWN_SPEC_DEVIATIONS:
        assert len(deviation.reason) > 60, deviation.name


@pytest.mark.parametrize(
    "deviation",
    [d for d in KNOWN_SPEC_DEVIATIONS if d.patch is not None],
    ids=lambda d: d.name,
)
def test_a_patch_that_no_longer_fits_fails_loudly(deviation: Any) -> None:
    """A patch checks the spec still has the flaw it works around: twice is an error."""
    spec = patched_spec()
    with pytest.raises(LookupError, match="no longer matches"):
        deviation.patch(spec)


def _response_examples(spec: dict[str, Any]) -> Iterator[tuple[str, str, int, Any]]:
    """(method, path, status, body) of every response example in the spec."""
    responses = spec["components"].get("responses", {})
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if "$ref" in response:
                    response = responses[response["$ref"].rsplit("/", 1)[1]]
                for media in response.get("content", {}).values():
                    for example in media.get("examples", {}).values():
                        yield method.upper(), path, int(status), example["value"]


def _concrete(path: str) -> str:
    return path.replace("{id}", "7")


def _check_examples(validator: SpecValidator, spec: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for method, path, status, body in _response_examples(spec):
        headers = {"Content-Type": "application/json"}
        found = validator.response_errors(
            method, _concrete(path), status, headers, json.dumps(body).encode()
        )
        problems.extend(f"{status} {method} {path}: {p}" for p in found)
    return problems


def test_every_response_example_of_the_spec_passes() -> None:
    """With the deviations applied, the spec's own examples all validate (401s included)."""
    examples = list(_response_examples(patched_spec()))
    assert len(examples) >= 20
    assert {s for _, _, s, _ in examples} >= {200, 201, 400, 401, 404}
    assert _check_examples(spec_validator(), patched_spec()) == []


def test_the_pristine_spec_contradicts_its_own_examples() -> None:
    """Without the deviations, the spec rejects its own examples: the list is not invented."""
    problems = _check_examples(SpecValidator(load_spec()), load_spec())
    text = "\n".join(problems)
    assert "404 is not of type 'string'" in text  # error-status-int-or-string
    assert "'extra_forbidden' is not one of" in text  # error-code-open-enum


def test_every_request_example_of_the_spec_passes() -> None:
    """The request bodies the spec shows are valid requests (the validator is not too strict)."""
    spec = patched_spec()
    count = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            if body is None:
                continue
            for example in body["content"]["application/json"].get("examples", {}).values():
                count += 1
                headers = {**AUTH, "Content-Type": "application/json"}
                payload = json.dumps(example["value"]).encode()
                assert (
                    spec_validator().request_errors(
                        method.upper(), _concrete(path), "", headers, payload
                    )
                    == []
                ), (method, path, example)
    assert count >= 7


# -- what the validator catches ---------------------------------------------------------------


async def test_an_off_spec_response_is_a_violation_and_fails_on_exit() -> None:
    """A fake answering outside the spec (an unknown feedback_type) fails the test."""
    fake = FakeSendcloud(validate_spec=True)
    await fake.start()
    fake.add_integration(id=1, feedback_type="sometimes")
    async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
        integration = await client.integrations.get(1)  # the SDK itself is tolerant
    assert integration.feedback_type == "sometimes"
    assert len(fake.spec_violations) == 1
    with pytest.raises(SpecViolationError, match="feedback_type") as info:
        await fake.__aexit__(None, None, None)
    message = str(info.value)
    assert "response 200 to GET /api/v3/integrations/1" in message
    assert "'sometimes' is not one of ['eager', 'delayed', 'none']" in message


async def test_an_off_spec_sdk_request_is_a_violation() -> None:
    """An SDK request the spec forbids (a cursor that is no date-time) is caught."""
    async with FakeSendcloud(validate_spec=True) as fake:
        async with sc.SendcloudClient(
            auth=fake.basic_auth, base_url=fake.base_url, max_retries=0
        ) as client:
            with pytest.raises(sc.BadRequestError):
                await anext(client.logs.pages(cursor="yesterday"))
        assert fake.spec_violations == [
            "request GET /api/v3/integrations/logs?cursor=yesterday: "
            "Invalid query parameter: cursor; 'yesterday' is not a 'date-time'"
        ]
        fake.spec_violations.clear()


async def test_allowed_off_spec_requests_are_recorded_apart() -> None:
    """Inside allow_off_spec_requests the same request is recorded but does not fail."""
    async with FakeSendcloud(validate_spec=True) as fake:
        async with sc.SendcloudClient(
            auth=fake.basic_auth, base_url=fake.base_url, max_retries=0
        ) as client:
            with fake.spec.allow_off_spec_requests(), pytest.raises(sc.BadRequestError):
                await anext(client.logs.pages(cursor="yesterday"))
            await client.integrations.list()
        assert fake.spec_violations == []
        assert len(fake.spec.off_spec_requests) == 1
        assert "'yesterday' is not a 'date-time'" in fake.spec.off_spec_requests[0]


async def test_a_raw_plus_in_a_query_is_read_as_a_space(fake: FakeSendcloud) -> None:
    """Query strings are decoded as a server framework does: a raw '+' is a space."""
    async with aiohttp.ClientSession(headers=AUTH) as http:
        url = fake.base_url + "/integrations/logs?cursor=2023-03-01T02:02:00+01:00"
        async with http.get(URL(url, encoded=True)) as resp:
            assert resp.status == 400
    [problem] = fake.spec.off_spec_requests
    assert "'2023-03-01T02:02:00 01:00' is not a 'date-time'" in problem


async def test_other_clients_requests_are_checked_but_do_not_fail(fake: FakeSendcloud) -> None:
    """Tests of the fake send invalid requests on purpose; the answers are still checked."""
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(fake.base_url + "/integrations") as resp,
    ):
        assert resp.status == 401
    async with aiohttp.ClientSession(headers=AUTH) as http:
        async with http.patch(fake.base_url + "/integrations/0", json={"x": 1}) as resp:
            assert resp.status == 404
        async with http.put(fake.base_url + "/integrations") as resp:
            assert resp.status == 405
        async with http.get(fake.base_url + "/nowhere") as resp:
            assert resp.status == 404
    requests = "\n".join(fake.spec.off_spec_requests)
    assert (
        "request GET /api/v3/integrations: SecurityValidationError: Security not found" in requests
    )
    assert "Invalid path parameter: id; 0 is less than the minimum of 1" in requests
    assert "'x' was unexpected" in requests  # patch-forbids-unknown-fields
    assert "Operation put not found" in requests
    assert "Path not found" in requests
    assert fake.spec_violations == []  # 401, 404 and 405 bodies all follow the spec


async def test_bearer_tokens_satisfy_the_oauth2_scheme() -> None:
    """OAuth2 requests pass the spec's security check; a bare 'Bearer' does not."""
    async with FakeSendcloud(validate_spec=True) as fake:
        async with sc.SendcloudClient(
            auth=fake.oauth2_credentials, base_url=fake.base_url
        ) as client:
            await client.integrations.list()
        async with (
            aiohttp.ClientSession(headers={"Authorization": "Bearer "}) as http,
            http.get(fake.base_url + "/integrations") as resp,
        ):
            assert resp.status == 401
        assert next(r.auth_scheme for r in fake.requests if r.path == "/integrations") == "bearer"
        assert len(fake.spec.off_spec_requests) == 1
        assert "Security not found" in fake.spec.off_spec_requests[0]


async def test_scripted_responses_are_exempt_but_their_requests_are_not() -> None:
    """A scripted off-spec answer is no violation; the request that got it is still checked."""
    async with FakeSendcloud(validate_spec=True) as fake:
        fake.script("GET", "/integrations", ScriptedResponse(502, body="<html>proxy</html>"))
        async with sc.SendcloudClient(
            auth=fake.basic_auth, base_url=fake.base_url, max_retries=0
        ) as client:
            with pytest.raises(sc.ServerError):
                await client.integrations.list()
        assert fake.spec_violations == []


async def test_validation_is_off_unless_asked() -> None:
    """validate_spec=False turns it off; None follows SpecCheck.default (on in this suite)."""
    assert SpecCheck.default is True
    async with FakeSendcloud(validate_spec=False) as fake:
        fake.add_integration(id=1, feedback_type="sometimes")
        async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as c:
            await c.integrations.get(1)
        assert fake.spec_violations == []
        assert not fake.spec.enabled
    assert FakeSendcloud().spec.enabled


async def test_leaving_with_an_exception_does_not_hide_it() -> None:
    """When the block raises, that exception propagates, not the violation report."""
    fake = FakeSendcloud(validate_spec=True)
    await fake.start()
    fake.spec_violations.append("response 200 to GET /x: made up")
    error = KeyError("the test's own failure")
    await fake.__aexit__(KeyError, error, None)  # no SpecViolationError on top of it
    assert fake.spec_violations == ["response 200 to GET /x: made up"]


def test_a_page_is_checked_record_by_record_and_still_names_the_bad_one() -> None:
    """A page of logs passes as its envelope plus each record, each record checked once;
    a bad record sends the page to the whole check, whose message names where it is."""
    validator = SpecValidator(patched_spec())
    fake = FakeSendcloud(validate_spec=False)
    fake.seed(integrations=1, logs_per_integration=3)
    logs = fake.logs
    headers = {"Content-Type": "application/json"}

    def errors(page: dict[str, Any]) -> list[str]:
        body = json.dumps(page).encode()
        return validator.response_errors("GET", "/integrations/logs", 200, headers, body)

    assert errors({"data": logs}) == []
    assert errors({"data": logs[::-1]}) == []  # another page, the same records
    assert len(validator._valid_items) == 3
    assert errors({"data": [*logs[:2], {**logs[2], "method": 5}]}) == [
        "InvalidData; 5 is not of type 'string' (at /data/2/method)"
    ]
    assert errors({"data": [*logs[:2], {**logs[2], "method": "PURGE"}]}) == []
    assert len(validator._valid_items) == 4  # only the changed record was new
    assert errors({"data": "x"}) == ["InvalidData; 'x' is not of type 'array' (at /data)"]


def test_the_validator_is_built_once() -> None:
    """spec_validator() is cached: building it costs about 0.3 s."""
    assert spec_validator() is spec_validator()


@pytest.mark.parametrize(
    "field", [{"webhook_url": ""}, {"webhook_url": "0"}, {"shop_url": "not a url"}]
)
async def test_fake_refuses_urls_the_spec_forbids(
    fake: FakeSendcloud, field: dict[str, Any]
) -> None:
    """webhook_url and shop_url are format: uri, minLength 1: the fake answers 400, stores
    nothing, so it never serves an off-spec integration later (found by schemathesis)."""
    stored = fake.add_integration(id=1)
    before = dict(stored)
    async with (
        aiohttp.ClientSession(headers=AUTH) as http,
        http.patch(fake.base_url + "/integrations/1", json=field) as resp,
    ):
        assert resp.status == 400
        [error] = (await resp.json())["errors"]
    assert error["source"] == {"pointer": f"body/{next(iter(field))}"}
    assert fake.integrations[1] == before
