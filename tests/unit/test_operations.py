"""The request's shape: the operations table against the spec, and the one URL builder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import sendcloud_async as sc
from sendcloud_async import _operations
from sendcloud_async._operations import (
    INTEGRATIONS_GET,
    INTEGRATIONS_LIST,
    LOGS_LIST,
    LOGS_LIST_ONE,
    SHOP_ORDER_STATUSES_LIST,
)
from sendcloud_async._request import NO_CONTENT, Operation

SPEC_FILE = Path(__file__).resolve().parents[1] / "spec" / "sendcloud-v3-integrations-openapi.yml"
HTTP_METHODS = ("get", "put", "post", "delete", "patch")
AUTH = sc.BasicAuth("public", "secret-value-xyz")


def _spec_operations() -> dict[tuple[str, str], dict[str, Any]]:
    with SPEC_FILE.open(encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    return {
        (method.upper(), path): item[method]
        for path, item in doc["paths"].items()
        for method in HTTP_METHODS
        if method in item
    }


SPEC = _spec_operations()


def _url(op: Operation[Any], *args: Any, base_url: str = "https://h.example/api/v3") -> str:
    return str(sc.SendcloudClient(AUTH, base_url=base_url)._transport.url(op, *args))


def test_the_table_holds_every_operation_of_the_spec_once() -> None:
    """Each (method, template) is one of the spec's, and each of the spec's is in the table."""
    table = [(op.method, op.template) for op in _operations.ALL]
    assert len(table) == len(set(table))
    assert set(table) == set(SPEC)
    exported = {getattr(_operations, name) for name in _operations.__all__ if name != "ALL"}
    assert exported == set(_operations.ALL)


def test_operation_names_are_resource_dot_verb() -> None:
    """A name is ``<client attribute>.<verb>``: what logs and tracing group calls by."""
    client = sc.SendcloudClient(AUTH)
    for op in _operations.ALL:
        resource, _, verb = op.name.partition(".")
        assert verb.isidentifier(), op.name
        assert hasattr(client, resource), op.name


@pytest.mark.parametrize("op", _operations.ALL, ids=lambda op: f"{op.method} {op.template}")
def test_each_operation_decodes_the_spec_success_answer(op: Operation[Any]) -> None:
    """The response type reads the spec's 2xx examples; NO_CONTENT where the spec has none."""
    success = {
        status: answer
        for status, answer in SPEC[(op.method, op.template)]["responses"].items()
        if str(status).startswith("2")
    }
    assert success, op.name
    examples = [
        example["value"]
        for answer in success.values()
        for media in (answer.get("content") or {}).values()
        for example in (media.get("examples") or {}).values()
    ]
    if op.decoder is NO_CONTENT:
        assert all(value is None for value in examples), op.name
        assert op.decoder.decode(b"") is None  # type: ignore[func-returns-value]
        return
    assert examples, op.name
    for value in examples:
        decoded = op.decoder.decode(json.dumps(value).encode())
        assert decoded.data is not None


def test_only_creating_a_log_is_not_repeated_after_it_may_have_been_sent() -> None:
    """Whether a request may be repeated: by its method, and the two POSTs that replace a set."""
    repeatable = {op.name for op in _operations.ALL if op.repeatable}
    assert {op.name for op in _operations.ALL} - repeatable == {"logs.create"}


@pytest.mark.parametrize(
    ("method", "idempotent", "repeatable"),
    [
        ("GET", None, True),
        ("DELETE", None, True),
        ("PATCH", None, True),
        ("POST", None, False),
        ("POST", True, True),
        ("GET", False, False),
    ],
)
def test_an_operation_is_repeatable_as_its_method_says_unless_told(
    method: str, idempotent: bool | None, repeatable: bool
) -> None:
    """``idempotent=None`` follows the method (RFC 9110); a value given wins."""
    op = Operation("things.do", method, "/things", NO_CONTENT, idempotent=idempotent)
    assert op.repeatable is repeatable


# -- the one URL builder -------------------------------------------------------------------


def test_path_and_query_are_filled_in_order() -> None:
    """The template takes the path values; the query follows in the order given."""
    url = _url(LOGS_LIST_ONE, {"id": 42}, (("cursor", "abc"), ("page_size", 5)))
    assert url == "https://h.example/api/v3/integrations/42/logs?cursor=abc&page_size=5"


def test_a_value_of_none_is_left_out() -> None:
    """``None`` leaves its parameter out; with none left there is no ``?``."""
    assert _url(LOGS_LIST, None, (("cursor", None), ("page_size", 7))) == (
        "https://h.example/api/v3/integrations/logs?page_size=7"
    )
    assert _url(INTEGRATIONS_LIST, None, (("sort", None),)) == (
        "https://h.example/api/v3/integrations"
    )


def test_a_plus_in_a_query_value_is_sent_as_percent_2b() -> None:
    """A cursor's UTC offset arrives as ``%2B01:00``, never as a space."""
    url = _url(LOGS_LIST, None, (("cursor", "2024-03-01T10:00:00+01:00"),))
    assert url.endswith("?cursor=2024-03-01T10:00:00%2B01:00")


def test_booleans_are_true_and_false() -> None:
    """A bool goes on the wire as ``true``/``false`` (not 1/0, not True)."""
    query = (("integration_id", 3), ("show_deleted", True), ("language", "en-gb"))
    assert _url(SHOP_ORDER_STATUSES_LIST, None, query).endswith(
        "?integration_id=3&show_deleted=true&language=en-gb"
    )
    assert _url(SHOP_ORDER_STATUSES_LIST, None, (("show_deleted", False),)).endswith(
        "?show_deleted=false"
    )


def test_a_path_value_cannot_leave_its_segment() -> None:
    """``/``, ``?``, ``#``, ``+`` and spaces in a path value are percent-encoded."""
    op = Operation("things.get", "GET", "/things/{name}", NO_CONTENT)
    assert _url(op, {"name": "a/b?c#d+e f"}) == (
        "https://h.example/api/v3/things/a%2Fb%3Fc%23d%2Be%20f"
    )


def test_a_query_value_cannot_add_a_parameter() -> None:
    """``&`` and ``=`` in a value stay inside it."""
    assert _url(INTEGRATIONS_LIST, None, (("sort", "a&b=c"),)).endswith("?sort=a%26b%3Dc")


def test_the_base_url_path_is_kept_as_given() -> None:
    """A base URL with its own (encoded) path prefix is kept byte for byte."""
    url = _url(INTEGRATIONS_GET, {"id": 9}, base_url="http://127.0.0.1:8080/my%20api/v3/")
    assert url == "http://127.0.0.1:8080/my%20api/v3/integrations/9"
