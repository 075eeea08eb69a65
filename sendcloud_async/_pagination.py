"""Pure helpers for cursor paging: Link headers, cursor encoding, next-page URLs.

Nothing here does I/O. The page walker in ``_resources/logs.py`` calls these.

Decisions, documented in the README too:

* ``Link`` headers are parsed per RFC 8288 rather than with aiohttp's
  ``ClientResponse.links``, which keys links by the whole ``rel`` value and
  compares it case-sensitively: we accept several links per header, several
  headers, ``rel`` quoted or bare, multi-valued (``rel="next last"``) and in
  any case. The first ``rel="next"`` link wins; malformed parts are skipped.
* A relative target is resolved against the URL of the response it came in.
* A next URL on another origin (scheme, host or port) is refused: no request
  goes there and so no credential can leak.
* The cursor is opaque. A ``+`` in a Link's query is a literal plus (RFC 3986;
  only HTML forms read it as a space) — cursors are date-times with offsets —
  and every query value is re-encoded so that ``+`` always reaches the server
  as ``%2B``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Final
from urllib.parse import quote, unquote

from yarl import URL

from ._errors import InvalidInputError, SendcloudError

__all__ = [
    "PaginationError",
    "encode_query_value",
    "find_next_link",
    "parse_link_header",
]

# Left as they are in a query value: RFC 3986 unreserved characters (always kept by
# ``quote``) plus ':' and '@', allowed in a query and common in date-times. Everything
# else, '+' included, is percent-encoded.
_QUERY_SAFE = ":@"


class PaginationError(SendcloudError):
    """The server's paging links cannot be followed safely."""


#: A value of only unreserved characters, ':', '@' and '+' (a date-time cursor): its
#: encoding is the value with '+' as %2B, without ``quote``'s per-character work.
_PLAIN_VALUE: Final = re.compile(r"[A-Za-z0-9\-._~:@+]*")


def encode_query_value(value: str) -> str:
    """Percent-encode one query value; ``+`` becomes ``%2B``, never a space."""
    if _PLAIN_VALUE.fullmatch(value):
        return value.replace("+", "%2B")
    return quote(value, safe=_QUERY_SAFE)


def cursor_to_str(cursor: str | datetime) -> str:
    """The cursor as the server reads it: a string as given, an aware datetime as ISO 8601."""
    if isinstance(cursor, datetime):
        if cursor.tzinfo is None or cursor.tzinfo.utcoffset(cursor) is None:
            raise InvalidInputError(
                "cursor must be an aware datetime (with a UTC offset); got a naive one"
            )
        return cursor.isoformat()
    if isinstance(cursor, str):
        if not cursor:
            raise InvalidInputError("cursor must not be an empty string")
        return cursor
    raise InvalidInputError(
        f"cursor must be a str or an aware datetime, not {type(cursor).__name__}"
    )


_WS = " \t"
_TOKEN_END = "=;, \t"


def _parse_one(value: str) -> Iterator[tuple[str, dict[str, str]]]:
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " \t,":
            i += 1
        if i >= n:
            return
        if value[i] != "<":
            # Not a link-value: skip to the next one that starts with '<'.
            nxt = value.find(",", i)
            if nxt == -1:
                return
            i = nxt + 1
            continue
        end = value.find(">", i + 1)
        if end == -1:
            return
        target = value[i + 1 : end].strip()
        i = end + 1
        params: dict[str, str] = {}
        while True:
            while i < n and value[i] in _WS:
                i += 1
            if i >= n or value[i] == ",":
                break
            if value[i] != ";":
                # Garbage after the target: drop the rest of this link-value.
                nxt = value.find(",", i)
                i = n if nxt == -1 else nxt
                break
            i += 1
            while i < n and value[i] in _WS:
                i += 1
            start = i
            while i < n and value[i] not in _TOKEN_END:
                i += 1
            name = value[start:i].lower()
            while i < n and value[i] in _WS:
                i += 1
            param_value = ""
            if i < n and value[i] == "=":
                i += 1
                while i < n and value[i] in _WS:
                    i += 1
                if i < n and value[i] == '"':
                    i += 1
                    chars: list[str] = []
                    while i < n and value[i] != '"':
                        if value[i] == "\\" and i + 1 < n:
                            i += 1
                        chars.append(value[i])
                        i += 1
                    i += 1  # closing quote (or past the end)
                    param_value = "".join(chars)
                else:
                    start = i
                    while i < n and value[i] not in ";, \t":
                        i += 1
                    param_value = value[start:i]
            if name and name not in params:  # RFC 8288: the first occurrence wins
                params[name] = param_value
        yield target, params


def parse_link_header(values: Iterable[str]) -> list[tuple[str, dict[str, str]]]:
    """Every link in one or more ``Link`` header values as ``(target, params)``.

    Parameter names are lower-cased; values are unquoted. Never raises on garbage.
    """
    links: list[tuple[str, dict[str, str]]] = []
    for value in values:
        links.extend(_parse_one(value))
    return links


# What servers send nearly always: one link, rel=next, nothing else. The fast path
# answers only where it provably agrees with the RFC 8288 parser (a property test
# checks it over generated headers): a target without characters the parser treats
# specially, then ``rel`` bare or fully quoted.
_SIMPLE_NEXT: Final = re.compile(
    r'[ \t]*<([^<>,;"\\]*)>[ \t]*;[ \t]*[Rr][Ee][Ll][ \t]*=[ \t]*'
    r'(?:"[Nn][Ee][Xx][Tt]"|[Nn][Ee][Xx][Tt])[ \t]*\Z'
)


def find_next_link(values: Iterable[str]) -> str | None:
    """The target of the first link whose ``rel`` includes ``next`` (any case), or ``None``."""
    if isinstance(values, list) and len(values) == 1:
        match = _SIMPLE_NEXT.match(values[0])
        if match is not None:
            return match.group(1).strip()
    for target, params in parse_link_header(values):
        rel = params.get("rel")
        if rel and "next" in rel.lower().split():
            return target
    return None


# One canonical form of a next-page query, for absolute and relative links alike:
# percent-escapes kept (hex upper-cased), unreserved characters and ':' '@' '=' '&'
# '/' '?' kept, everything else percent-encoded as UTF-8 ('+' becomes %2B: a literal
# plus; a stray '%' becomes %25). The server decodes it to what the link meant.
_QUERY_FIX: Final = re.compile(r"%([0-9A-Fa-f]{2})|(%)|([^A-Za-z0-9\-._~:@=&/?%])")


def _fix_query_char(match: re.Match[str]) -> str:
    escape, stray, other = match.groups()
    if escape is not None:
        return "%" + escape.upper()
    if stray is not None:
        return "%25"
    return quote(other, safe="")  # UnicodeEncodeError for a lone surrogate


def canonical_query(raw_query: str) -> str:
    """``raw_query`` in the one form every next-page request uses (see above)."""
    return _QUERY_FIX.sub(_fix_query_char, raw_query)


_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# A path and query that the slow path returns unchanged (a property test checks it):
# no dot segment, and only characters and escapes that both keep as they are.
_CANONICAL_TAIL: Final = re.compile(
    r"(?:/(?!\.\.?(?:/|\?|\Z))(?:[A-Za-z0-9\-._~:@]|%[0-9A-F]{2})*)+"
    r"(?:\?(?:[A-Za-z0-9\-._~:@=&/?]|%[0-9A-F]{2})*)?\Z"
)


@functools.lru_cache(maxsize=256)
def _origin_prefixes(origin: tuple[str, str | None, int | None]) -> tuple[str, ...]:
    scheme, host, port = origin
    if host is None:
        return ()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    prefixes = [f"{scheme}://{host}:{port}"]
    if port == _DEFAULT_PORTS.get(scheme):
        prefixes.append(f"{scheme}://{host}")
    return tuple(prefixes)


def cursor_in(url: URL) -> str | None:
    """The (decoded) ``cursor`` query value of an encoded URL; ``None`` if absent or empty."""
    for part in url.raw_query_string.split("&"):
        if part.startswith("cursor="):
            return unquote(part[7:]) or None  # an empty cursor cannot be passed back
    return None


def follow_link(
    target: str,
    *,
    response_url: URL,
    origin: tuple[str, str | None, int | None],
) -> URL:
    """The URL to request for a Link target: same origin, query in its one canonical form.

    Absolute and relative targets are treated alike: resolved against the response's
    URL, checked for the API's origin, then every query key and value re-encoded.
    Raises ``PaginationError`` for a target on another origin, with credentials, or
    one that is not a usable URL (bad port, host or encoding): nothing is sent then.
    """
    for prefix in _origin_prefixes(origin):
        # Fast path: an absolute link on our origin already in canonical form.
        if target.startswith(prefix) and _CANONICAL_TAIL.match(target, len(prefix)):
            return URL(target, encoded=True)
    return _follow_link_slow(target, response_url=response_url, origin=origin)


# A target with an authority but no host in it (``http:///x``, ``//:8080/x``): an "http"
# URI with an empty host is invalid and must be rejected (RFC 9110, 4.2.1), where a
# lenient join would take it for a path on the response's own origin.
_NO_HOST: Final = re.compile(
    r"(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//(?:[^/?#]*@)?(?::[^/?#]*)?(?:[/?#]|\Z)"
)


def _follow_link_slow(
    target: str,
    *,
    response_url: URL,
    origin: tuple[str, str | None, int | None],
) -> URL:
    if _NO_HOST.match(target.strip()):
        raise PaginationError(
            "the server sent a next-page link without a host; no request was sent"
        )
    try:
        url = response_url.join(URL(target, encoded=True))
        found = (url.scheme, url.host, url.port)
        user, password = url.user, url.password
    except (ValueError, TypeError) as exc:  # UnicodeError is a ValueError
        raise PaginationError(
            f"the server sent an unusable next-page link ({type(exc).__name__}); "
            "no request was sent"
        ) from None
    if found != origin:
        raise PaginationError(
            "refusing to follow a next-page link to another origin; no request was sent there"
        )
    if user is not None or password is not None:
        raise PaginationError("refusing to follow a next-page link that carries credentials")
    try:
        query = canonical_query(url.raw_query_string)
        base = str(url.with_query(None).with_fragment(None))
    except (ValueError, TypeError) as exc:
        raise PaginationError(
            f"the server sent an unusable next-page link ({type(exc).__name__}); "
            "no request was sent"
        ) from None
    text = f"{base}?{query}" if query else base
    if not text.isascii():
        raise PaginationError("the server sent an unusable next-page link; no request was sent")
    return URL(text, encoded=True)
