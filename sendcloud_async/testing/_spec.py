"""Check FakeSendcloud's traffic against the official OpenAPI document.

The fake and the SDK are written by the same people: if both misread the spec
the same way, every test stays green. The official OpenAPI 3.1 document of the
Integrations API v3 (shipped in ``spec/`` beside this module, as JSON so that
loading it needs only the standard library) is the referee nobody here wrote.
With ``FakeSendcloud(validate_spec=True)`` an aiohttp middleware checks, with
`openapi-core <https://openapi-core.readthedocs.io>`_:

* every request the SDK sends (User-Agent ``sendcloud-async/...``): path,
  method, security, query and path parameters, JSON body;
* every response the fake returns: status declared for the operation, content
  type, body schema, declared headers.

Violations are collected in ``fake.spec_violations``; leaving ``async with
FakeSendcloud(...)`` with any raises ``SpecViolationError``. Exempt, and why:

* Responses served from ``fake.script(...)`` or an injected fault: they are
  off-spec on purpose (an HTML 502 from a proxy, an empty 429). The requests
  that got them are still checked.
* Requests from other clients (a plain aiohttp session, schemathesis) are
  checked too, but their violations go to ``fake.spec.off_spec_requests``:
  tests of the fake send invalid requests on purpose to see how it answers
  (and its answers are still checked). ``with
  fake.spec.allow_off_spec_requests():`` does the same for SDK requests a test
  makes invalid on purpose (an opaque cursor that is not a date-time).
* The spec's self-contradictions: ``KNOWN_SPEC_DEVIATIONS`` lists each, with
  the reason, in this one place. Most are a small patch applied to the
  document before validation; a patch that no longer fits the document (the
  spec was fixed) fails loudly instead of silently hiding nothing. A few
  tighten the spec where the API is stricter than its schema.

How a request is read, where HTTP leaves a choice: query strings are decoded
as a server framework does (``+`` is a space), so a raw ``+`` in a cursor is a
violation; the fake's origin stands in for the spec's server URL.

openapi-core is used through its public interface only (``OpenAPI.from_dict``,
``Config``, ``iter_request_errors``, ``iter_response_errors``), and each schema
beyond that through openapi-schema-validator (``schema_validator``): the fake's
own request bodies are checked with it too (``_bodies.py``), so the fake and this
check read every schema alike. The validator is built once per process (about
0.5 s); a request costs about 2 ms, a response about 0.5 ms plus 0.2 ms per log
record the process has not seen before (verdicts are memoised). ``openapi-core``
is needed only when validation is on; ``FakeSendcloud()`` alone does not import it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web
from multidict import CIMultiDict

from ._request import read_authorization

if TYPE_CHECKING:
    from openapi_core import OpenAPI

__all__ = [
    "KNOWN_SPEC_DEVIATIONS",
    "SPEC_FILE",
    "SPEC_SERVER",
    "SpecCheck",
    "SpecDeviation",
    "SpecValidator",
    "SpecViolationError",
    "exempt_from_spec",
    "is_uri",
    "load_spec",
    "patched_spec",
    "resolve_ref",
    "schema_validator",
    "shared_patched_spec",
    "spec_validator",
]

#: The JSON form of the official spec, shipped inside the package.
SPEC_FILE: Final = "spec/sendcloud-v3-integrations-openapi.json"
#: The server URL of the spec; the fake's API base stands in for it.
SPEC_SERVER: Final = "https://panel.sendcloud.sc/api/v3"
_SPEC_ORIGIN: Final = "https://panel.sendcloud.sc"
_API_PREFIX: Final = "/api/v3"
_SDK_USER_AGENT: Final = "sendcloud-async/"
#: The key under which a ``web.StreamResponse`` is marked as deliberately off-spec
#: (``web.ResponseKey`` where aiohttp has it: a plain string key warns there).
_EXEMPT_KEY: Final[Any] = (
    web.ResponseKey("sendcloud_async_off_spec", bool)
    if hasattr(web, "ResponseKey")
    else "sendcloud_async_off_spec"
)

Spec = dict[str, Any]
_SORTED_JSON: Final = msgspec.json.Encoder(order="sorted")


class SpecViolationError(AssertionError):
    """A request the SDK sent or a response the fake returned does not follow the spec."""


# -- the spec's known self-contradictions ---------------------------------------------


@dataclass(frozen=True, slots=True)
class SpecDeviation:
    """A place where the spec contradicts itself or the API, and what we check instead.

    ``patch`` edits the document before validation and raises ``LookupError``
    if the document no longer looks as expected (the spec was fixed). A
    deviation without a patch is a rule of the validator itself. ``lenient``
    names operations (``"POST /shop-order-statuses"``) where the API refuses
    some schema-valid requests with 400 by a rule JSON Schema cannot express;
    schema-driven testing (the ``conformance`` session) accepts a 400 there.
    """

    name: str
    reason: str
    patch: Callable[[Spec], None] | None = None
    lenient: tuple[str, ...] = ()


_ERRORS_REF: Final = {"$ref": "#/components/schemas/errors"}
_METHODS: Final = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _operations(spec: Spec) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in _METHODS:
            if method in item:
                yield path, method, item[method]


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise LookupError(f"the spec no longer matches this deviation: {what}")


def _error_status_as_int_or_string(spec: Spec) -> None:
    status = spec["components"]["schemas"]["ErrorObject"]["properties"]["status"]
    _expect(status.get("type") == "string", "ErrorObject.status is typed string")
    status["type"] = ["string", "integer"]


_EXTRA_ERROR_CODES: Final = ("extra_forbidden", "method_not_allowed")


def _error_codes_the_api_sends(spec: Spec) -> None:
    code = spec["components"]["schemas"]["ErrorObject"]["properties"]["code"]
    enum = code.get("enum")
    _expect(isinstance(enum, list), "ErrorObject.code has an enum")
    missing = [c for c in _EXTRA_ERROR_CODES if c not in enum]
    _expect(bool(missing), "ErrorObject.code's enum lacks extra_forbidden")
    enum.extend(missing)


def _unauthorized_on_every_operation(spec: Spec) -> None:
    _expect("Unauthorized" in spec["components"].get("responses", {}), "a 401 response")
    for path, method, operation in _operations(spec):
        _expect("security" in operation, f"{method.upper()} {path} requires auth")
        _expect("401" not in operation["responses"], f"{method.upper()} {path} lacks 401")
        operation["responses"]["401"] = {"$ref": "#/components/responses/Unauthorized"}


def _client_errors_on_every_operation(spec: Spec) -> None:
    added = 0
    for _path, _method, operation in _operations(spec):
        for status, description in (("400", "Bad Request"), ("404", "Not Found")):
            if status not in operation["responses"]:
                operation["responses"][status] = {
                    "description": description,
                    "content": {"application/json": {"schema": dict(_ERRORS_REF)}},
                }
                added += 1
    _expect(added > 0, "some operation lacks 400 or 404")


def _patch_forbids_unknown_fields(spec: Spec) -> None:
    body = spec["paths"]["/integrations/{id}"]["patch"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    _expect(
        schema == {"$ref": "#/components/schemas/integration-model"},
        "PATCH /integrations/{id} takes a plain integration-model",
    )
    # Beside a $ref, openapi-core ignores other keywords: wrap the reference in allOf.
    body["content"]["application/json"]["schema"] = {
        "allOf": [schema],
        "unevaluatedProperties": False,
    }


_SORT_FIELDS: Final = "(integration_type|created_at|updated_at|last_fetch|failing_since)"


def _sort_values(spec: Spec) -> None:
    [param] = [
        p for p in spec["paths"]["/integrations"]["get"]["parameters"] if p["name"] == "sort"
    ]
    schema = param["schema"]
    _expect(schema == {"type": "string"}, "GET /integrations sort is any string")
    schema["pattern"] = f"^(-?{_SORT_FIELDS}(,-?{_SORT_FIELDS})*)?$"  # empty: the default


def _integration_id_minimum(spec: Spec) -> None:
    schema = spec["components"]["parameters"]["required_integration_id"]["schema"]
    _expect("minimum" not in schema, "the integration_id query parameter has no minimum")
    schema["minimum"] = 1


#: Every place where the spec contradicts itself or the API, with the reason.
#: The README's "Spec conformance" section lists the same.
KNOWN_SPEC_DEVIATIONS: Final[tuple[SpecDeviation, ...]] = (
    SpecDeviation(
        "error-status-int-or-string",
        "ErrorObject.status is typed `string` (format int32), but the spec's own examples "
        "send it as an integer (`404`, and `400` in the POST /integrations/{id}/logs "
        "example) as well as a string (`'400'`, `'401'`): both are accepted.",
        _error_status_as_int_or_string,
    ),
    SpecDeviation(
        "error-code-open-enum",
        "ErrorObject.code's enum lacks `extra_forbidden`, which the spec's own POST "
        "/integrations/{id}/logs example sends, and `method_not_allowed`, what the API "
        "answers with a 405: both are added to the enum (the SDK treats code as an open "
        "string anyway).",
        _error_codes_the_api_sends,
    ),
    SpecDeviation(
        "undeclared-401",
        "Every operation requires HTTP Basic or OAuth2 credentials and "
        "components/responses/Unauthorized describes the 401 body, but no operation "
        "references it: a 401 with that body is accepted on every operation.",
        _unauthorized_on_every_operation,
    ),
    SpecDeviation(
        "undeclared-400-404",
        "Several operations do not declare the 400 (invalid query or body: a bad `sort`, "
        "`page_size` or `cursor`) and 404 (unknown integration, e.g. on "
        "/shop-order-statuses) they answer with; where missing, both are accepted with the "
        "spec's `errors` body.",
        _client_errors_on_every_operation,
    ),
    SpecDeviation(
        "patch-forbids-unknown-fields",
        "PATCH /integrations/{id}'s body schema allows fields it does not list, but the "
        "API rejects them with 400 `extra_forbidden` (like integration-log-create, which "
        "says additionalProperties: false): unknown fields are a violation. This one "
        "tightens the spec.",
        _patch_forbids_unknown_fields,
    ),
    SpecDeviation(
        "unrouted-errors",
        "The spec does not describe what a path or method it does not list answers "
        "(404 for an unknown path, 405 with `Allow` for an unsupported method): such "
        "answers must still carry the spec's `errors` body.",
    ),
    SpecDeviation(
        "sort-values",
        "GET /integrations' `sort` is typed as any string, but its description allows only "
        "integration_type, created_at, updated_at, last_fetch and failing_since, each "
        "optionally prefixed with '-' (comma-separated for several; empty means the default "
        "order): the schema gets that pattern. This one tightens the spec.",
        _sort_values,
    ),
    SpecDeviation(
        "integration-id-minimum",
        "The `integration_id` query parameter has no minimum, while every other integration "
        "id in the spec (the {id} path parameter, integration-log.integration_id) is 1 or "
        "more: it gets minimum 1. This one tightens the spec.",
        _integration_id_minimum,
    ),
    SpecDeviation(
        "rules-beyond-json-schema",
        "Some rules the API enforces cannot be written in JSON Schema: one translation per "
        "language and unique, non-empty external_ids in POST /shop-order-statuses; one entry "
        "per status category in POST /shop-order-statuses/mapping (uniqueItems only compares "
        "whole objects); a webhook_url whenever webhook_active is true in PATCH "
        "/integrations/{id} (the spec's own 400 description). A 400 to such a schema-valid "
        "request is expected.",
        lenient=(
            "POST /shop-order-statuses",
            "POST /shop-order-statuses/mapping",
            "PATCH /integrations/{id}",
        ),
    ),
)


# -- loading ------------------------------------------------------------------------------


@cache
def _raw_spec_text() -> str:
    return resources.files(__package__).joinpath(SPEC_FILE).read_text(encoding="utf-8")


def load_spec() -> Spec:
    """The official spec as shipped (a fresh copy each call)."""
    doc: Spec = json.loads(_raw_spec_text())
    return doc


@cache
def _patched() -> Spec:
    spec = load_spec()
    for deviation in KNOWN_SPEC_DEVIATIONS:
        if deviation.patch is not None:
            deviation.patch(spec)
    return spec


def patched_spec() -> Spec:
    """The spec with every ``KNOWN_SPEC_DEVIATIONS`` patch applied (a fresh copy)."""
    return copy.deepcopy(_patched())


def shared_patched_spec() -> Spec:
    """``patched_spec()`` shared by the whole process, not copied: read it, never change it."""
    return _patched()


# -- the validator ------------------------------------------------------------------------

# RFC 3986 absolute URI, loosely: a scheme, a colon, no whitespace or characters
# that are never allowed. jsonschema checks "uri" only when an optional package
# is installed; this makes the check the same everywhere.
_URI: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]*")


def is_uri(value: str) -> bool:
    """Whether ``value`` is an absolute URI (the spec's ``format: uri``), loosely checked."""
    return _URI.fullmatch(value) is not None


def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or is_uri(value)


#: Format checks beyond those openapi-schema-validator makes, for every schema checked.
_EXTRA_FORMATS: Final = {"uri": _is_uri}


@cache
def _format_checker() -> Any:
    from openapi_schema_validator import OAS31Validator

    checker = copy.deepcopy(OAS31Validator.FORMAT_CHECKER)
    for name, check in _EXTRA_FORMATS.items():
        checker.checks(name)(check)
    return checker


def schema_validator(schema: Mapping[str, Any], spec: Spec) -> Any:
    """A JSON Schema validator for ``schema``, a part of ``spec`` whose ``$ref``s point
    into it: openapi-schema-validator's ``OAS31Validator`` with its format checks plus
    ``_EXTRA_FORMATS``, which openapi-core gets too. The fake's request bodies and the
    records of the pages it serves are checked with it."""
    try:
        from openapi_schema_validator import OAS31Validator
    except ImportError as exc:
        raise ImportError(
            "FakeSendcloud checks request bodies against the OpenAPI spec with "
            "openapi-schema-validator, which the testing extra brings: "
            "python -m pip install 'openapi-schema-validator>=0.6'"
        ) from exc
    root = {**schema, "components": spec.get("components", {})}
    return OAS31Validator(root, format_checker=_format_checker())


def _security_providers() -> Any:
    """openapi-core's security providers plus one for the spec's ``oauth2`` scheme:
    openapi-core has none (it warns and accepts anything), and what the API takes is
    an ``Authorization: Bearer <token>`` header, read as the fake reads it."""
    from openapi_core.security.exceptions import SecurityProviderError
    from openapi_core.security.factories import SecurityProviderFactory
    from openapi_core.security.providers import BaseProvider

    class BearerProvider(BaseProvider):
        def __call__(self, parameters: Any) -> Any:
            token = read_authorization(parameters.header.get("Authorization")).bearer
            if token is None:
                raise SecurityProviderError("no bearer token")
            return token

    class Providers(SecurityProviderFactory):
        PROVIDERS = {**SecurityProviderFactory.PROVIDERS, "oauth2": BearerProvider}  # noqa: RUF012

    return Providers()


@dataclass(slots=True)
class _Request:
    """A request as openapi-core's ``Request`` protocol wants it."""

    method: str
    path: str
    parameters: Any
    body: bytes | None
    content_type: str
    host_url: str = _SPEC_ORIGIN


@dataclass(frozen=True, slots=True)
class _Response:
    """A response as openapi-core's ``Response`` protocol wants it."""

    status_code: int
    headers: Mapping[str, str]
    data: bytes | None
    content_type: str


def _text(exc: BaseException) -> str:
    """``str(exc)``, or its class name when that fails (openapi-core's messages decode
    request bodies as UTF-8 and raise on any other bytes)."""
    try:
        return str(exc)
    except Exception:
        return type(exc).__name__


def _describe(exc: BaseException) -> str:
    """One line: openapi-core's message, then each JSON Schema error with its location."""
    parts = [_text(exc).split(": Value ", 1)[0].split(": (<ValidationError", 1)[0]]
    cause: BaseException | None = exc.__cause__
    while cause is not None:
        schema_errors = getattr(cause, "schema_errors", None)  # openapi-core's documented way
        if schema_errors is not None:
            for error in schema_errors:
                where = "/".join(str(p) for p in getattr(error, "absolute_path", ()))
                message = getattr(error, "message", str(error))
                parts.append(f"{message} (at /{where})" if where else message)
            break
        text = _text(cause)
        if text and text not in parts[0]:
            parts.append(text)
        cause = cause.__cause__
    return "; ".join(parts)


class SpecValidator:
    """Validates requests and responses against the patched spec. Build it once.

    It uses openapi-core's public interface only: ``OpenAPI.from_dict`` with a
    ``Config``, ``iter_request_errors`` and ``iter_response_errors`` over this
    module's request and response adapters. Verdicts are memoised on what they
    depend on (method, path, query, the shape of the Authorization header,
    content type, declared headers, a digest of the body): a suite sends the same
    requests and gets the same pages many times. A ``{"data": [...]}`` page is
    checked as its envelope (``data`` empty) plus each record with
    ``schema_validator``, each record once per process, since JSON Schema
    validation of a 100-log page takes about 20 ms; a page that does not pass that
    way is checked whole, for openapi-core's own account of what is wrong.
    """

    _MEMO_SIZE: Final = 4096
    _ITEMS_SEEN: Final = 65536

    def __init__(self, spec: Spec) -> None:
        try:
            from openapi_core import Config, OpenAPI
        except ImportError as exc:
            raise ImportError(
                "FakeSendcloud(validate_spec=True) needs openapi-core: "
                "python -m pip install 'openapi-core>=0.19'"
            ) from exc
        config = Config(
            security_provider_factory=_security_providers(),
            extra_format_validators=dict(_EXTRA_FORMATS),
        )
        self._spec = spec
        self._app: OpenAPI = OpenAPI.from_dict(spec, config=config)
        self._errors = schema_validator({"$ref": "#/components/schemas/errors"}, spec)
        # The only headers a verdict depends on besides Authorization and Content-Type.
        self._request_headers = _declared_headers(spec, "parameters")
        self._response_headers = _declared_headers(spec, "responses")
        self._memo: OrderedDict[tuple[Any, ...], list[str]] = OrderedDict()
        self._routes = _route_patterns(spec)
        self._item_checks: dict[tuple[str, str, int, str], Any] = {}
        self._valid_items: set[tuple[str, str, int, str, bytes]] = set()

    def _remember(self, key: tuple[Any, ...], compute: Callable[[], list[str]]) -> list[str]:
        found = self._memo.get(key)
        if found is not None:
            self._memo.move_to_end(key)
            return list(found)
        result = compute()
        self._memo[key] = result
        if len(self._memo) > self._MEMO_SIZE:
            self._memo.popitem(last=False)
        return list(result)

    def request_errors(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> list[str]:
        """What is wrong with a request; ``path`` is below ``/api/v3``, ``query`` raw."""
        ci = CIMultiDict(headers)
        key = (
            "request",
            method,
            path,
            query,
            _auth_shape(ci.get("Authorization")),
            ci.get("Content-Type", ""),
            tuple(tuple(ci.getall(name, ())) for name in self._request_headers),
            _digest(body),
        )

        def compute() -> list[str]:
            request = _make_request(method, _API_PREFIX + path, query, ci, body)
            return [_describe(e) for e in self._app.iter_request_errors(request)]

        return self._remember(key, compute)

    def response_errors(
        self,
        method: str,
        path: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> list[str]:
        """What is wrong with the response to ``method path`` (``path`` below ``/api/v3``)."""
        ci = CIMultiDict(headers)
        content_type = ci.get("Content-Type", "")
        key = (
            "response",
            method,
            path,
            status,
            content_type,
            tuple(tuple(ci.getall(name, ())) for name in self._response_headers),
            _digest(body),
        )

        def compute() -> list[str]:
            if status == 405:  # KNOWN_SPEC_DEVIATIONS "unrouted-errors"
                return self._unrouted_errors(status, content_type, body)
            if self._passes_by_records(method, path, status, ci, body):
                return []
            return self._whole_response_errors(method, path, status, ci, body)

        return self._remember(key, compute)

    def _whole_response_errors(
        self, method: str, path: str, status: int, headers: CIMultiDict[str], body: bytes | None
    ) -> list[str]:
        from openapi_core.templating.paths.exceptions import PathError

        request = _make_request(method, _API_PREFIX + path, "", CIMultiDict(), None)
        content_type = headers.get("Content-Type", "")
        response = _Response(status, headers, body or None, content_type.lower())
        errors: list[str] = []
        for error in self._app.iter_response_errors(request, response):
            if isinstance(error, PathError):
                return self._unrouted_errors(status, content_type, body)
            errors.append(_describe(error))
        return errors

    def _passes_by_records(
        self, method: str, path: str, status: int, headers: CIMultiDict[str], body: bytes | None
    ) -> bool:
        """Whether a ``{"data": [...]}`` page passes as its envelope plus each record."""
        media = headers.get("Content-Type", "").partition(";")[0].strip().lower()
        template = _route_of(self._routes, path)
        if template is None or not body:
            return False
        where = (template, method.lower(), status, media)
        if where not in self._item_checks:
            self._item_checks[where] = self._records_schema(*where)
        check = self._item_checks[where]
        if check is None:
            return False
        try:
            value = json.loads(body)
        except ValueError:
            return False
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            return False
        records = value["data"]
        if len(records) < 2:
            return False
        envelope = _SORTED_JSON.encode({**value, "data": []})
        if self._whole_response_errors(method, path, status, headers, envelope):
            return False
        for record in records:
            seen = (*where, _digest(_SORTED_JSON.encode(record)))
            if seen in self._valid_items:
                continue
            if not check.is_valid(record):
                return False
            if len(self._valid_items) < self._ITEMS_SEEN:
                self._valid_items.add(seen)
        return True

    def _records_schema(self, template: str, method: str, status: int, media: str) -> Any:
        """A validator of one ``data`` record of this response, or ``None`` when the
        page's ``data`` schema says more than its items' schema (``minItems``...)."""
        operation = self._spec["paths"][template].get(method)
        if not isinstance(operation, dict):
            return None
        responses = operation.get("responses", {})
        response = resolve_ref(self._spec, responses.get(str(status), responses.get("default")))
        content = response.get("content") if isinstance(response, dict) else None
        medium = content.get(media) if isinstance(content, dict) else None
        schema = resolve_ref(self._spec, medium.get("schema")) if isinstance(medium, dict) else None
        properties = schema.get("properties") if isinstance(schema, dict) else None
        data = (
            resolve_ref(self._spec, properties.get("data"))
            if isinstance(properties, dict)
            else None
        )
        if not isinstance(data, dict) or not set(data) <= _PLAIN_ARRAY_KEYWORDS:
            return None
        if data.get("type", "array") != "array" or not isinstance(data.get("items"), dict):
            return None
        return schema_validator(data["items"], self._spec)

    def _unrouted_errors(self, status: int, content_type: str, body: bytes | None) -> list[str]:
        # KNOWN_SPEC_DEVIATIONS "unrouted-errors": an error with the spec's errors body.
        if status < 400:
            return [f"a {status} answer to an operation the spec does not have"]
        if not content_type.lower().startswith("application/json"):
            return [f"content type {content_type!r} is not application/json"]
        try:
            document = json.loads(body or b"")
        except ValueError:
            return ["the body is not JSON"]
        return [
            f"{e.message} (at /{'/'.join(str(p) for p in e.absolute_path)})"
            for e in self._errors.iter_errors(document)
        ]


_PLAIN_ARRAY_KEYWORDS: Final = frozenset({"type", "items", "description", "title"})


def resolve_ref(spec: Spec, node: Any) -> Any:
    """``node`` with its local ``$ref`` (``#/components/...``) followed, if it has one
    (``None`` for a reference outside ``spec``)."""
    seen = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and seen < 16:
        ref: str = node["$ref"]
        if not ref.startswith("#/"):
            return None
        node = spec
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part) if isinstance(node, dict) else None
        seen += 1
    return node


def _route_patterns(spec: Spec) -> list[tuple[re.Pattern[str], str]]:
    """The spec's path templates as patterns, templates with fewer parameters first
    (``/integrations/logs`` before ``/integrations/{id}``)."""
    routes = []
    for template in spec["paths"]:
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        routes.append((template.count("{"), template, re.compile(pattern)))
    return [(pattern, template) for _, template, pattern in sorted(routes)]


def _route_of(routes: list[tuple[re.Pattern[str], str]], path: str) -> str | None:
    for pattern, template in routes:
        if pattern.fullmatch(path):
            return template
    return None


def _declared_headers(spec: Spec, where: str) -> tuple[str, ...]:
    """Header names the spec declares as request parameters or response headers."""
    names: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if where == "parameters" and node.get("in") == "header" and "name" in node:
                names.add(str(node["name"]).lower())
            if where == "responses" and isinstance(node.get("headers"), dict):
                names.update(str(n).lower() for n in node["headers"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec["paths"])
    walk(spec["components"])
    return tuple(sorted(names))


def _auth_shape(value: str | None) -> tuple[str, bool, bool] | None:
    """All that security checks look at: the scheme, and whether credentials follow."""
    if value is None:
        return None
    scheme, space, rest = value.partition(" ")
    return scheme.lower(), bool(space), bool(rest.strip())


def _digest(body: bytes | None) -> bytes:
    return hashlib.blake2b(body or b"", digest_size=16).digest()


def _make_request(
    method: str, path: str, query: str, headers: CIMultiDict[str], body: bytes | None
) -> _Request:
    from openapi_core.datatypes import RequestParameters
    from werkzeug.datastructures import ImmutableMultiDict

    params = RequestParameters(
        query=ImmutableMultiDict(parse_qsl(query, keep_blank_values=True)),
        header=headers,
        cookie=ImmutableMultiDict(),
    )
    content_type = headers.get("Content-Type", "")
    return _Request(method.lower(), path, params, body or None, content_type.lower())


@cache
def spec_validator() -> SpecValidator:
    """The process-wide validator over ``patched_spec()``."""
    return SpecValidator(patched_spec())


# -- the per-fake check -------------------------------------------------------------------


_R = TypeVar("_R", bound=web.StreamResponse)


def exempt_from_spec(response: _R) -> _R:
    """Mark a response as deliberately off-spec (a scripted answer, an injected fault)."""
    response[_EXEMPT_KEY] = True
    return response


class SpecCheck:
    """What ``FakeSendcloud(validate_spec=...)`` holds: the middleware and the findings."""

    #: Whether a ``FakeSendcloud()`` created without ``validate_spec`` validates.
    #: The SDK's own test suite turns this on for every fake it starts.
    default: bool = False

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = SpecCheck.default if enabled is None else bool(enabled)
        #: Violations that fail the test: off-spec SDK requests, off-spec responses.
        self.violations: list[str] = []
        #: Off-spec requests from other clients, or allowed by ``allow_off_spec_requests``.
        self.off_spec_requests: list[str] = []
        self._allow_requests = 0
        if self.enabled:
            spec_validator()  # fail now (missing openapi-core), not in the server task

    @contextmanager
    def allow_off_spec_requests(self) -> Iterator[None]:
        """Within the block, off-spec SDK requests are recorded but do not fail."""
        self._allow_requests += 1
        try:
            yield
        finally:
            self._allow_requests -= 1

    def raise_for_violations(self) -> None:
        """Raise ``SpecViolationError`` listing every violation, if there is any."""
        if self.violations:
            listed = "\n".join(f"  - {v}" for v in self.violations)
            raise SpecViolationError(
                f"{len(self.violations)} violation(s) of the OpenAPI spec "
                f"(see sendcloud_async/testing/_spec.py for what is checked):\n{listed}"
            )

    def middlewares(self) -> list[Any]:
        """The aiohttp middlewares to install (none when validation is off)."""
        if not self.enabled:
            return []

        @web.middleware
        async def validate(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            path = request.path
            if not path.startswith(_API_PREFIX + "/"):
                return await handler(request)  # the token endpoint is not in this spec
            rel = path[len(_API_PREFIX) :]
            query = request.raw_path.partition("?")[2]
            body = await request.read()
            where = f"{request.method} {request.raw_path}"
            # The validator must never change what the fake answers: if it fails,
            # that is recorded as a violation (the test fails) and serving goes on.
            try:
                self._check_request(request, rel, query, body)
            except Exception as exc:
                self.violations.append(f"request {where}: the validator failed: {exc!r}")
            response: web.StreamResponse = await handler(request)
            if not response.get(_EXEMPT_KEY):
                try:
                    self._check_response(request.method, rel, response)
                except Exception as exc:
                    self.violations.append(f"response to {where}: the validator failed: {exc!r}")
            return response

        return [validate]

    def _check_request(self, request: web.Request, rel: str, query: str, body: bytes) -> None:
        problems = spec_validator().request_errors(
            request.method, rel, query, request.headers, body
        )
        if not problems:
            return
        where = f"request {request.method} {request.raw_path}"
        found = [f"{where}: {p}" for p in problems]
        from_sdk = request.headers.get("User-Agent", "").startswith(_SDK_USER_AGENT)
        if from_sdk and not self._allow_requests:
            self.violations.extend(found)
        else:
            self.off_spec_requests.extend(found)

    def _check_response(self, method: str, rel: str, response: web.StreamResponse) -> None:
        where = f"response {response.status} to {method} {_API_PREFIX}{rel}"
        if not isinstance(response, web.Response):
            self.violations.append(f"{where}: a streamed response cannot be checked")
            return
        raw = response.body
        if raw is not None and not isinstance(raw, bytes):
            self.violations.append(f"{where}: a non-bytes body cannot be checked")
            return
        headers = CIMultiDict(response.headers)
        if raw and "Content-Type" not in response.headers:
            headers["Content-Type"] = response.content_type  # what aiohttp will send
        problems = spec_validator().response_errors(method, rel, response.status, headers, raw)
        self.violations.extend(f"{where}: {p}" for p in problems)
