"""The request bodies the fake reads: checked against the spec, answered in the API's words.

A body is checked in two steps, and each rule lives in one of them:

1. its schema in the OpenAPI document (``patched_spec()``, the one the spec check
   validates against), with ``schema_validator`` (openapi-schema-validator): JSON
   object, types, required fields, enums, lengths, formats, unknown fields;
2. the rules JSON Schema cannot express, listed as ``rules-beyond-json-schema`` in
   ``KNOWN_SPEC_DEVIATIONS``: one translation per language and unique, non-empty
   ``external_id``s in POST /shop-order-statuses, one entry per status category in
   POST /shop-order-statuses/mapping (``uniqueItems`` compares whole objects, so
   these rules, which name the repeated item, answer for it). Rules that need the
   stored state (a ``webhook_url`` whenever ``webhook_active``) stay with the route.

The API answers body errors in two styles, as the spec's examples show, and
``_Style`` turns each schema error into an error object of its endpoint's style:

* the Pydantic-style endpoints (PATCH /integrations/{id}, POST
  /integrations/{id}/logs): an integer ``status``, a pointer ``body/<field>`` (an
  error inside a list points at the list), Pydantic's messages. A required field
  sent as ``null`` is answered as missing.
* the shop order status endpoints: a string ``status``, JSON pointers
  (``/statuses/0/external_id``), Django REST framework's messages, and a body that
  is not a JSON object answered with ``non_field_errors`` "Wrong format".

Each place in the body gets one error, the most telling one (a wrong choice before
a wrong type, a wrong type before a wrong length or format). openapi-schema-validator
is imported when the first body is read: ``FakeSendcloud()`` without a body to read
does not need it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, Final

import msgspec

from ._answers import error
from ._spec import Spec, resolve_ref, schema_validator, shared_patched_spec

__all__ = ["BODY_OPERATIONS", "BodyCheckUnavailable", "read_body"]

Record = dict[str, Any]
#: Where in a body: object keys and list indexes, from the top.
Path = tuple[str | int, ...]

#: The schema keywords whose error is kept, in this order, when one place in a body
#: breaks several: a wrong choice says more than a wrong type, and a wrong type more
#: than a wrong length or format.
_FIRST: Final = ("enum", "type")


class BodyCheckUnavailable(ImportError):
    """The package that checks bodies against the spec (openapi-schema-validator) is missing."""


@dataclass(frozen=True, slots=True)
class _Problem:
    """One thing wrong with a body, before it is put in an endpoint's words."""

    path: Path
    code: str
    detail: str


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def _types(schema: Any) -> list[str]:
    declared = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(declared, str):
        return [declared]
    return [str(t) for t in declared] if isinstance(declared, list) else []


def _or(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


# -- the two styles ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Style:
    """How one kind of endpoint words a schema error, and where it points."""

    status: int | str
    pointer: Callable[[Path], str]
    #: keyword -> (code, detail) for a schema error (``None``: the generic wording).
    words: Callable[[Any], tuple[str, str] | None]
    #: (code, detail) of a missing field and of a field the schema does not know.
    required: tuple[str, str]
    extra: tuple[str, str]
    #: The answer to a body that is not a JSON object; ``None``: a schema error at the top.
    not_an_object: Record | None = None
    #: Whether a required field sent as ``null`` is answered as missing.
    null_is_missing: bool = False
    #: Whether an error inside a list points at the list (the item's index goes in the detail).
    points_at_lists: bool = False

    def record(self, problem: _Problem) -> Record:
        return error(self.status, problem.code, problem.detail, pointer=self.pointer(problem.path))


def _pydantic_words(e: Any) -> tuple[str, str] | None:
    schema, value, keyword = e.schema, e.validator_value, e.validator
    if keyword == "type":
        wanted = ["list" if t == "array" else t for t in _types(schema)]
        return "invalid", f"Input should be a valid {_or(wanted)}"
    if keyword == "enum":
        return "invalid_choice", f"Input should be {_or([repr(v) for v in value])}"
    if keyword in ("minLength", "maxLength"):
        return "invalid", f"String should have {_extent(schema, 'Length', 'character')}"
    if keyword in ("minItems", "maxItems"):
        return "invalid", f"List should have {_extent(schema, 'Items', 'item')}"
    if keyword in ("minimum", "maximum"):
        relation = "greater" if keyword == "minimum" else "less"
        return "invalid", f"Input should be {relation} than or equal to {value}"
    if keyword == "format" and value == "date-time":
        if isinstance(e.instance, str) and _naive_datetime(e.instance):
            return "invalid", "Input should have timezone info"
        return "invalid", "Input should be a valid datetime"
    if keyword == "format" and value == "uri":
        return "invalid", "Input should be a valid URL"
    return None


def _extent(schema: Any, keywords: str, noun: str, *, at_most: str = "at most") -> str:
    """How many ``noun``s ``min<keywords>``/``max<keywords>`` allow: ``1 to 7 items``,
    ``exactly 4 elements``, ``at least 1 character``."""
    low, high = schema.get("min" + keywords), schema.get("max" + keywords)
    if low is not None and low == high:
        count, number = f"exactly {low}", low
    elif low is not None and high is not None:
        count, number = f"{low} to {high}", high
    elif low is not None:
        count, number = f"at least {low}", low
    else:
        count, number = f"{at_most} {high}", high
    return f"{count} {noun}{'s' * (number != 1)}"


def _naive_datetime(text: str) -> bool:
    try:
        return datetime.fromisoformat(text).tzinfo is None
    except ValueError:
        return False


def _drf_words(e: Any) -> tuple[str, str] | None:
    schema, keyword, got = e.schema, e.validator, e.instance
    if keyword == "type":
        wanted = [t for t in _types(schema) if t != "null"]
        if wanted == ["array"]:
            return "not_a_list", f'Expected a list of items but got type "{_json_type(got)}".'
        if wanted == ["object"]:
            return "invalid", f"Invalid data. Expected an object, but got {_json_type(got)}."
        if wanted == ["integer"]:
            return "invalid", "A valid integer is required."
        if wanted == ["boolean"]:
            return "invalid", "Must be a valid boolean."
        return "invalid", "Not a valid string." if wanted == ["string"] else "Invalid value."
    if keyword == "enum":
        return "invalid_choice", f'"{got}" is not a valid choice.'
    if keyword in ("minItems", "maxItems"):
        extent = _extent(schema, "Items", "element", at_most="no more than")
        return "invalid", f"Ensure this field has {extent}."
    if keyword == "minLength":
        return "invalid", "This field may not be blank."
    return None


_PYDANTIC: Final = _Style(
    status=400,
    pointer=lambda path: "/".join(["body", *map(str, path)]),
    words=_pydantic_words,
    required=("required", "Field required"),
    extra=("extra_forbidden", "Extra inputs are not permitted"),
    null_is_missing=True,
    points_at_lists=True,
)
_DRF: Final = _Style(
    status="400",
    pointer=lambda path: "".join(f"/{p}" for p in path),
    words=_drf_words,
    required=("required", "This field is required."),
    extra=("unknown_field", "Unknown field."),
    not_an_object=error(
        "400", "non_field_errors", "Wrong request format, expected object", title="Wrong format"
    ),
)


# -- the rules beyond JSON Schema ---------------------------------------------------------


def _blank(path: Path, value: object) -> Iterable[_Problem]:
    if value == "":
        yield _Problem(path, "invalid", "This field may not be blank.")


def _objects(value: object) -> Iterable[tuple[int, Record]]:
    """The objects in ``value``, if it is a list, with their indexes."""
    for i, item in enumerate(value if isinstance(value, list) else ()):
        if isinstance(item, dict):
            yield i, item


def _once_each(
    at: Path, items: object, key: str, repeated: Callable[[str], str]
) -> Iterable[_Problem]:
    """A problem at each object of ``items`` whose ``key`` (a non-empty string) an
    earlier object has too."""
    seen: set[str] = set()
    for i, item in _objects(items):
        value = item.get(key)
        if isinstance(value, str) and value:
            if value in seen:
                yield _Problem((*at, i, key), "invalid", repeated(value))
            seen.add(value)


def _statuses_rules(body: Record) -> Iterable[_Problem]:
    """Non-empty, unique external_ids; non-empty statuses, one per language."""
    statuses = body.get("statuses")
    yield from _once_each(
        ("statuses",), statuses, "external_id", lambda v: f"Duplicate external_id {v!r}."
    )
    for i, status in _objects(statuses):
        yield from _blank(("statuses", i, "external_id"), status.get("external_id"))
        at: Path = ("statuses", i, "translations")
        translations = status.get("translations")
        yield from _once_each(at, translations, "language", lambda v: f'Duplicate language "{v}".')
        for j, translation in _objects(translations):
            yield from _blank((*at, j, "status"), translation.get("status"))


def _mapping_rules(body: Record) -> Iterable[_Problem]:
    """One entry per status category."""
    yield from _once_each(
        ("mapping",),
        body.get("mapping"),
        "status_category",
        lambda v: f'Status category "{v}" appears twice.',
    )


# -- the operations ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Operation:
    """How the fake reads one operation's body: its style and its rules beyond the schema."""

    style: _Style
    rules: Callable[[Record], Iterable[_Problem]] | None = None
    #: Schema keywords the rules answer for, more precisely.
    covered: frozenset[str] = field(default_factory=frozenset)


_NAME_THE_DUPLICATE: Final = frozenset({"uniqueItems"})

#: Every operation with a JSON body, and how the fake reads it.
BODY_OPERATIONS: Final[dict[str, _Operation]] = {
    "PATCH /integrations/{id}": _Operation(_PYDANTIC),
    "POST /integrations/{id}/logs": _Operation(_PYDANTIC),
    "POST /shop-order-statuses": _Operation(_DRF, _statuses_rules, _NAME_THE_DUPLICATE),
    "POST /shop-order-statuses/mapping": _Operation(_DRF, _mapping_rules, _NAME_THE_DUPLICATE),
}


@dataclass(frozen=True, slots=True)
class _Schema:
    """An operation's body schema, ready: its validator and its required top-level fields."""

    validator: Any
    required: frozenset[str]


def _declared(spec: Spec, schema: Any) -> set[str]:
    """The property names ``schema`` (its ``allOf`` parts and references too) declares."""
    schema = resolve_ref(spec, schema)
    if not isinstance(schema, dict):
        return set()
    names = set(schema.get("properties", {}))
    for part in schema.get("allOf", ()):
        names |= _declared(spec, part)
    return names


@cache
def _schema(operation: str) -> _Schema:
    method, _, path = operation.partition(" ")
    spec = shared_patched_spec()
    body = spec["paths"][path][method.lower()]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    try:
        validator = schema_validator(schema, spec)
    except ImportError as exc:
        raise BodyCheckUnavailable(str(exc)) from None
    required = frozenset(resolve_ref(spec, schema).get("required", ()))
    return _Schema(validator, required)


def _problems(operation: _Operation, schema: _Schema, body: Any) -> list[_Problem]:
    style, spec = operation.style, shared_patched_spec()
    found: list[tuple[int, _Problem]] = []
    for e in schema.validator.iter_errors(body):
        path: Path = tuple(e.absolute_path)
        if e.validator in operation.covered:
            continue
        if e.validator == "required":
            found.extend(
                (0, _Problem((*path, name), *style.required))
                for name in e.validator_value
                if isinstance(e.instance, dict) and name not in e.instance
            )
        elif e.validator in ("additionalProperties", "unevaluatedProperties"):
            known = _declared(spec, e.schema)
            found.extend(
                (0, _Problem((*path, name), *style.extra))
                for name in e.instance
                if name not in known
            )
        else:
            code, detail = style.words(e) or ("invalid", e.message)
            rank = _FIRST.index(e.validator) if e.validator in _FIRST else len(_FIRST)
            found.append((rank, _Problem(path, code, detail)))
    if operation.rules is not None and isinstance(body, dict):
        found.extend((len(_FIRST) + 1, p) for p in operation.rules(body))
    return [problem for _, problem in sorted(found, key=lambda pair: pair[0])]


def _at_lists(problem: _Problem) -> _Problem:
    """The problem pointing at the list that holds what it is about (Pydantic style)."""
    for n, part in enumerate(problem.path):
        if isinstance(part, int):
            return _Problem(problem.path[:n], problem.code, f"{problem.detail} (item {part})")
    return problem


def _document_order(body: Any, path: Path) -> tuple[int, ...]:
    """Where ``path`` is in ``body``: keys in the order sent, missing ones after them."""
    order: list[int] = []
    node = body
    for part in path:
        if isinstance(node, dict):
            keys = list(node)
            order.append(keys.index(part) if part in node else len(keys))
        elif isinstance(node, list) and isinstance(part, int):
            order.append(part)
        else:
            order.append(0)
        node = node.get(part) if isinstance(node, dict) else None
    return tuple(order)


def read_body(operation: str, raw: bytes) -> tuple[Record, list[Record]]:
    """The JSON object ``raw`` holds and the error objects for what is wrong with it.

    ``operation`` is a key of ``BODY_OPERATIONS``. With any error, the 400 to answer
    carries the errors and the body must not be used. Raises ``BodyCheckUnavailable``
    when openapi-schema-validator is not installed.
    """
    reading = BODY_OPERATIONS[operation]
    style = reading.style
    schema = _schema(operation)
    try:
        body: Any = msgspec.json.decode(raw) if raw else None
    except msgspec.DecodeError:
        body = None  # answered as any other body that is not a JSON object
    if not isinstance(body, dict) and style.not_an_object is not None:
        return {}, [dict(style.not_an_object)]
    checked = body
    if style.null_is_missing and isinstance(body, dict):
        checked = {k: v for k, v in body.items() if not (v is None and k in schema.required)}
    problems = _problems(reading, schema, checked)
    if style.points_at_lists:
        problems = [_at_lists(p) for p in problems]
    one_each: dict[Path, _Problem] = {}
    for problem in problems:
        one_each.setdefault(problem.path, problem)
    ordered = sorted(one_each.values(), key=lambda p: _document_order(body, p.path))
    return (body if isinstance(body, dict) else {}), [style.record(p) for p in ordered]
