"""How the fake answers: JSON responses and the API's error objects.

An error object is ``{"status", "code", "title", "detail"}`` with an optional
``source`` (a ``pointer`` into the body or a query ``parameter``), inside
``{"errors": [...]}``, as the spec's ``errors`` schema describes. ``status`` is an
int or a string, as the endpoint's examples in the spec send it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec
from aiohttp import web

__all__ = ["JSON", "error", "errors_response", "json_response"]

JSON: Final = "application/json"
_ENCODER: Final = msgspec.json.Encoder()

#: Titles of the codes whose title is not the code with spaces, capitalised.
_TITLES: Final = {
    "invalid": "Invalid",
    "invalid_choice": "Invalid choice",
    "required": "Required",
    "not_a_list": "Not a list",
    "extra_forbidden": "Extra Forbidden",
}


def json_response(
    status: int, obj: object, headers: Mapping[str, str] | None = None
) -> web.Response:
    """``obj`` encoded as the JSON body of a ``status`` response."""
    return web.Response(
        status=status, body=_ENCODER.encode(obj), content_type=JSON, headers=headers
    )


def error(
    status: int | str,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    pointer: str | None = None,
    parameter: str | None = None,
) -> dict[str, Any]:
    """One error object; ``title`` defaults to the code's (``invalid`` -> ``Invalid``)."""
    found: dict[str, Any] = {
        "status": status,
        "code": code,
        "title": title or _TITLES.get(code, code.replace("_", " ").capitalize()),
        "detail": detail,
    }
    if pointer is not None:
        found["source"] = {"pointer": pointer}
    elif parameter is not None:
        found["source"] = {"parameter": parameter}
    return found


def errors_response(
    status: int, errors: list[dict[str, Any]], headers: Mapping[str, str] | None = None
) -> web.Response:
    """A ``status`` response whose body is ``{"errors": errors}``."""
    return json_response(status, {"errors": errors}, headers)
