"""Every example in the OpenAPI spec decodes with the SDK's matching type.

Examples are discovered by walking the spec document, so an example added to
the spec is covered without touching this file; an operation the SDK does not
know yet makes the test fail loudly instead of being skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from sendcloud_async import _validate as check
from sendcloud_async._error_response import build_api_error
from sendcloud_async._errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from sendcloud_async._models import (
    INTEGRATION_DECODER,
    INTEGRATION_LIST_DECODER,
    LOG_DECODER,
    LOG_LIST_DECODER,
    SHOP_ORDER_STATUS_LIST_DECODER,
    STATUS_MAPPING_DECODER,
    TolerantDecoder,
)
from sendcloud_async._resources.integrations import _IntegrationPatch
from sendcloud_async._resources.logs import _LogCreate
from sendcloud_async._resources.shop_order_statuses import _MappingBody, _StatusesBody

REPO = Path(__file__).resolve().parents[2]
SPEC_DIR = REPO / "tests" / "spec"
SPEC_FILE = SPEC_DIR / "sendcloud-v3-integrations-openapi.yml"
#: Sendcloud's published OpenAPI files, which this repository copies into tests/spec:
#: SENDCLOUD_SPEC_DIR names a directory holding them (by default shared/spec beside the
#: checkout, where the maintainers keep the upstream copy).
SHARED_SPEC_DIR = Path(os.environ.get("SENDCLOUD_SPEC_DIR") or REPO.parent / "shared" / "spec")

# How many examples the spec holds today; the walker must find at least these.
MIN_RESPONSE_EXAMPLES = 22
MIN_REQUEST_EXAMPLES = 7

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

STATUS_CLASSES: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}


@dataclass(frozen=True)
class Example:
    """One example found in the spec."""

    kind: str  # "response" or "request"
    method: str  # upper-case HTTP method, or "" for components.responses
    path: str  # path template, or "components.responses.<name>"
    status: str  # response status key ("200", "4XX", "default"), or "" for requests
    name: str
    value: Any

    @property
    def id(self) -> str:
        """A readable pytest id."""
        where = f"{self.method} {self.path}".strip()
        status = f" {self.status}" if self.status else ""
        return f"{self.kind}:{where}{status}:{self.name}"


def load_spec() -> dict[str, Any]:
    """The integrations spec as plain Python data."""
    with SPEC_FILE.open(encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    assert isinstance(doc, dict)
    return doc


def resolve(doc: dict[str, Any], node: Any) -> Any:
    """Follow a local ``$ref`` (possibly chained) to its target."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert isinstance(ref, str)
        assert ref.startswith("#/"), f"only local refs are supported, got {ref}"
        target: Any = doc
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
        seen += 1
        assert seen < 20, f"$ref loop at {ref}"
    return node


def media_examples(doc: dict[str, Any], holder: Any) -> Iterator[tuple[str, Any]]:
    """(name, value) of every example under a requestBody/response ``content`` map."""
    holder = resolve(doc, holder)
    if not isinstance(holder, dict):
        return
    for media_type, media in (holder.get("content") or {}).items():
        media = resolve(doc, media)
        if "example" in media:
            yield f"{media_type}:example", media["example"]
        for name, example in (media.get("examples") or {}).items():
            example = resolve(doc, example)
            assert "value" in example, f"example {name} has no inline value"
            yield name, example["value"]


def walk(doc: dict[str, Any]) -> Iterator[Example]:
    """Every request and response example of every operation, then of components.responses."""
    for path, item in (doc.get("paths") or {}).items():
        item = resolve(doc, item)
        for method in HTTP_METHODS:
            op = item.get(method)
            if op is None:
                continue
            if "requestBody" in op:
                for name, value in media_examples(doc, op["requestBody"]):
                    yield Example("request", method.upper(), path, "", name, value)
            for status, response in (op.get("responses") or {}).items():
                for name, value in media_examples(doc, response):
                    yield Example("response", method.upper(), path, str(status), name, value)
    for comp_name, response in ((doc.get("components") or {}).get("responses") or {}).items():
        for name, value in media_examples(doc, response):
            yield Example("response", "", f"components.responses.{comp_name}", "", name, value)


EXAMPLES = list(walk(load_spec()))
RESPONSE_EXAMPLES = [e for e in EXAMPLES if e.kind == "response"]
REQUEST_EXAMPLES = [e for e in EXAMPLES if e.kind == "request"]


def is_error(example: Example) -> bool:
    """Whether this response example is an error document."""
    if example.path.startswith("components.responses."):
        return True
    return example.status[:1] in ("4", "5") or example.status == "default"


# --- the success decoders ------------------------------------------------------------------

SUCCESS_DECODERS: dict[tuple[str, str, str], msgspec.json.Decoder[Any] | TolerantDecoder[Any]] = {
    ("GET", "/integrations", "200"): INTEGRATION_LIST_DECODER,
    ("GET", "/integrations/{id}", "200"): INTEGRATION_DECODER,
    ("GET", "/integrations/logs", "200"): LOG_LIST_DECODER,
    ("GET", "/integrations/{id}/logs", "200"): LOG_LIST_DECODER,
    ("POST", "/integrations/{id}/logs", "201"): LOG_DECODER,
    ("GET", "/shop-order-statuses", "200"): SHOP_ORDER_STATUS_LIST_DECODER,
    ("GET", "/shop-order-statuses/mapping", "200"): STATUS_MAPPING_DECODER,
}

# Operations whose success response has no body the SDK reads (the spec says `null`).
NULL_SUCCESS = {
    ("POST", "/shop-order-statuses", "200"),
    ("POST", "/shop-order-statuses/mapping", "200"),
}


def assert_subset(expected: Any, actual: Any, where: str = "$") -> None:
    """Every key and value of ``expected`` is in ``actual`` (extra keys in ``actual`` allowed)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} missing after decoding"
            assert_subset(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: expected an array, got {actual!r}"
        assert len(actual) == len(expected), f"{where}: length differs"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            assert_subset(e, a, f"{where}[{i}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


@pytest.mark.parametrize(
    "example", [e for e in RESPONSE_EXAMPLES if not is_error(e)], ids=lambda e: e.id
)
def test_success_response_example_decodes(example: Example) -> None:
    """A 2xx response example decodes with the SDK's decoder and loses nothing it shows."""
    key = (example.method, example.path, example.status)
    if key in NULL_SUCCESS:
        assert example.value is None
        return
    assert key in SUCCESS_DECODERS, f"no SDK decoder known for {key}; add it to this test"
    decoded = SUCCESS_DECODERS[key].decode(json.dumps(example.value).encode())
    # Everything the example shows survives decoding (date-times re-encode identically).
    assert_subset(example.value, msgspec.to_builtins(decoded))


def expected_status(example: Example) -> int:
    """The HTTP status of an error example: its response key, or its error object's status."""
    if example.status.isdigit():
        return int(example.status)
    errors = example.value["errors"]
    first = errors[0] if isinstance(errors, list) else errors
    return int(first["status"])


@pytest.mark.parametrize(
    "example", [e for e in RESPONSE_EXAMPLES if is_error(e)], ids=lambda e: e.id
)
def test_error_response_example_builds_error(example: Example) -> None:
    """An error example becomes the status's exception class with its error objects."""
    status = expected_status(example)
    err = build_api_error(
        status,
        body=json.dumps(example.value).encode(),
        method=example.method or "GET",
        url="https://panel.sendcloud.sc/api/v3/x",
    )
    expected_cls = STATUS_CLASSES.get(status, ServerError if status >= 500 else APIError)
    assert type(err) is expected_cls
    raw = example.value["errors"]
    raw_list = raw if isinstance(raw, list) else [raw]
    assert err.errors, "the example's error objects were not decoded"
    assert len(err.errors) == len(raw_list)
    for obj, src in zip(err.errors, raw_list, strict=True):
        assert obj.code == src["code"]
        assert isinstance(obj.status, int)
        assert obj.status == int(src["status"])
        assert obj.detail == src.get("detail")
        assert obj.title == src.get("title")
    assert err.code == raw_list[0]["code"]
    assert raw_list[0]["code"] in str(err)


# --- request examples --------------------------------------------------------------------

REQUEST_TYPES: dict[tuple[str, str], type[Any]] = {
    ("PATCH", "/integrations/{id}"): _IntegrationPatch,
    ("POST", "/integrations/{id}/logs"): _LogCreate,
    ("POST", "/shop-order-statuses"): _StatusesBody,
    ("POST", "/shop-order-statuses/mapping"): _MappingBody,
}


def _check_statuses(body: Any) -> None:
    assert isinstance(body, _StatusesBody)
    assert check.shop_order_statuses(body.statuses, allow_empty=False) == body.statuses


def _check_mapping(body: Any) -> None:
    assert isinstance(body, _MappingBody)
    assert check.status_mapping(body.mapping) == body.mapping


def _check_patch(body: Any) -> None:
    assert isinstance(body, _IntegrationPatch)
    if isinstance(body.feedback_type, str):
        assert check.choice(body.feedback_type, "feedback_type", check.FEEDBACK_TYPES)
    if isinstance(body.shop_name, str):
        check.non_empty_str(body.shop_name, "shop_name", max_len=check.MAX_SHOP_NAME)


# The SDK's input checks must accept what the spec's own examples send.
REQUEST_CHECKS: dict[type[Any], Callable[[Any], None]] = {
    _StatusesBody: _check_statuses,
    _MappingBody: _check_mapping,
    _IntegrationPatch: _check_patch,
}


@pytest.mark.parametrize("example", REQUEST_EXAMPLES, ids=lambda e: e.id)
def test_request_example_converts(example: Example) -> None:
    """A request example converts into the SDK's request body type and encodes back the same."""
    key = (example.method, example.path)
    assert key in REQUEST_TYPES, f"no SDK request type known for {key}; add it to this test"
    typ = REQUEST_TYPES[key]
    body = msgspec.convert(example.value, typ)
    # Encoding the body sends exactly what the example shows (nothing dropped or added).
    assert msgspec.json.decode(msgspec.json.encode(body)) == example.value
    if typ in REQUEST_CHECKS:
        REQUEST_CHECKS[typ](body)


# --- the walker itself ---------------------------------------------------------------------


def test_walker_finds_every_example() -> None:
    """The walker found at least as many examples as the spec holds today."""
    assert len(RESPONSE_EXAMPLES) >= MIN_RESPONSE_EXAMPLES
    assert len(REQUEST_EXAMPLES) >= MIN_REQUEST_EXAMPLES
    assert sum(1 for e in RESPONSE_EXAMPLES if is_error(e)) >= 12
    assert any(e.path.startswith("components.responses.") for e in RESPONSE_EXAMPLES)


def test_walker_covers_every_operation() -> None:
    """Every operation with a request or response example is reached by the walker."""
    ops = {(e.method, e.path) for e in EXAMPLES if e.method}
    assert ops >= {
        ("GET", "/integrations"),
        ("GET", "/integrations/{id}"),
        ("PATCH", "/integrations/{id}"),
        ("DELETE", "/integrations/{id}"),
        ("GET", "/integrations/logs"),
        ("GET", "/integrations/{id}/logs"),
        ("POST", "/integrations/{id}/logs"),
        ("GET", "/shop-order-statuses"),
        ("POST", "/shop-order-statuses"),
        ("GET", "/shop-order-statuses/mapping"),
        ("POST", "/shop-order-statuses/mapping"),
    }


def test_resolve_follows_refs() -> None:
    """resolve() follows a chain of local $refs and decodes ~1 escapes."""
    doc: dict[str, Any] = {
        "a": {"$ref": "#/b~1c"},
        "b/c": {"$ref": "#/d"},
        "d": {"value": 1},
    }
    assert resolve(doc, doc["a"]) == {"value": 1}


# --- the spec copies -----------------------------------------------------------------------


@pytest.mark.skipif(
    not SHARED_SPEC_DIR.is_dir(),
    reason="compares tests/spec with Sendcloud's published OpenAPI files, which are not part "
    "of this repository: set SENDCLOUD_SPEC_DIR to a directory holding them to run it",
)
def test_spec_copies_match_shared() -> None:
    """tests/spec/*.yml is byte-for-byte the shared spec (same files, same content)."""
    ours = {p.name: p.read_bytes() for p in SPEC_DIR.glob("*.yml")}
    theirs = {p.name: p.read_bytes() for p in SHARED_SPEC_DIR.glob("*.yml")}
    assert ours, "no spec files in tests/spec"
    assert sorted(ours) == sorted(theirs)
    for name, content in ours.items():
        assert content == theirs[name], f"{name} differs from the shared copy"
