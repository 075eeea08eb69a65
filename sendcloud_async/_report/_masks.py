"""Similar messages grouped: the parts of a message that differ from log to log, masked.

``message("404 Client Error: Not Found for url: https://shop-7.example.com/api/orders/81236")``
is ``"404 Client Error: Not Found for url: https://<host>/api/orders/<n>"``, the same
for every shop and order, so the report counts them as one kind of failure.

What is masked, in this order (each rule sees what the ones before left):

* URLs (``scheme://…``): the host becomes ``<host>``, each path segment is masked
  as below, every query value becomes ``<value>`` (the names stay), a fragment is
  dropped. A token in a query string never reaches the report.
* ``host='…'`` and ``host="…"`` (as ``urllib3`` writes them): ``host=<host>``.
* e-mail addresses: ``<email>``; UUIDs: ``<uuid>``; IPv4 addresses: ``<ip>``.
* the value after a credential word (``Bearer``, ``Basic``, ``token``, ``API key``,
  ``password``, ``passwd``, ``secret``, ``Authorization``), given with ``:`` or
  ``=`` (``password=…``, ``'X-Shopify-Access-Token': '…'``) or after a space when it
  is not a plain word (``Bearer eyJ…``, but ``token expired`` stays): ``<secret>``.
* runs of 16 or more letters, digits, ``_`` and ``-`` that are not made of words
  (``shpat_aBcDeFgHiJkLmNoPq``, but ``ClientConnectorCertificateError`` and
  ``X-Shopify-Access-Token`` stay): ``<id>``, whatever their digits; long numbers,
  UUIDs and hexadecimal runs as below.
* hexadecimal runs of 8 or more characters with a digit in them: ``<hex>``.
* tokens of 8 or more letters and digits with at least two digits in them (an order
  reference, a tracking number, a key): ``<id>``.
* numbers (``port=443``, ``timeout 30``, ``2024-03-01``, ``30ms``): ``<n>``, also
  inside a word (``V1`` is ``V<n>``): every digit is masked but those of the HTTP
  status that starts a message (``404 Client Error: …``), which is what the
  message is about.

Other host names outside URLs stay as they are. A masked message is cut at
``MAX_LENGTH`` characters. ``endpoint(method, url)`` is the same masking of a
request's URL, without its host: ``GET /api/orders/<n>``.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MAX_LENGTH", "NO_MESSAGE", "Masker", "endpoint", "message"]

#: A masked message (or endpoint) is cut here: keys stay small, whatever a shop sends.
MAX_LENGTH: Final = 240
#: What a log without a message is counted as.
NO_MESSAGE: Final = "(no message)"

_URL: Final = re.compile(
    r"\b(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]{1,15})://(?P<netloc>[^/?#\s'\"<>()\[\]{}|\\^`]*)"
    r"(?P<path>[^?#\s'\"<>()\[\]{}|\\^`]*)(?:\?(?P<query>[^#\s'\"<>()\[\]{}|\\^`]*))?"
    r"(?:#[^\s'\"<>()\[\]{}|\\^`]*)?"
)
_HOST_ARG: Final = re.compile(r"\bhost=(?:'[^']*'|\"[^\"]*\"|[^\s,)]+)")
_EMAIL: Final = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
#: A token with a digit in it: letters, digits, ``_``, ``.`` and ``-``, from its start
#: (the look-behind makes every other place fail at once: one pass, no backtracking).
_TOKEN: Final = re.compile(r"(?<![\w.-])[\w.-]*\d[\w.-]*")
_UUID: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_IPV4: Final = re.compile(r"(?:\d{1,3}\.){3}\d{1,3}")
_NUMBER: Final = re.compile(r"[-+]?\d+(?:[.,]\d+)*")
_PARTS: Final = re.compile(r"([.-])")
_UNIT: Final = re.compile(r"\d+([a-zA-Z]{1,3})")
_DIGIT_RUN: Final = re.compile(r"\d+")
_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")
_STATUS_HEAD: Final = re.compile(r"^[1-5]\d\d(?=\s)")
#: A credential word, how its value follows (``q``: the quote the value is in) and the value
#: (with the scheme an ``Authorization`` value may start with).
_CREDENTIAL: Final = re.compile(
    r"(?<![a-zA-Z0-9])(?:bearer|basic|token|api[-_ ]?key|password|passwd|secret|authorization)"
    r"(?P<sep>['\"]?[ \t]*[:=][ \t]*(?P<q>['\"])?|[ \t]+)"
    r"(?P<scheme>(?:bearer|basic|token|digest)[ \t]+)?"
    r"(?P<value>(?(q)[^'\"]+|[^\s'\",;&)}\]<>]+))",
    re.IGNORECASE,
)
#: A value after a space that is a plain word (``token expired``, ``Authorization failed:``).
_PLAIN_WORD: Final = re.compile(r"[A-Za-z][a-z]*[.:,;!?]?")
#: A run of 16 or more letters, digits, ``_`` and ``-``: a key, unless made of words.
_LONG: Final = re.compile(r"(?<![\w-])[\w-]{16,}")
_SEPARATORS: Final = re.compile(r"[_-]+")
#: Words as identifiers join them: ``Client``, ``HTTPS``, ``Connection``, ``client``.
_WORDS: Final = re.compile(r"(?:[A-Z]{1,15}(?=[A-Z][a-z]|\Z)|[A-Z]?[a-z]{2,15}(?![a-z]))+")


def _credential(match: re.Match[str]) -> str:
    value = match.group("value")
    if match.group("sep").isspace() and not match.group("scheme") and _PLAIN_WORD.fullmatch(value):
        return match.group(0)
    return match.group(0)[: match.start("value") - match.start()] + "<secret>"


def _made_of_words(run: str) -> bool:
    """Whether ``run`` is an identifier of words, digit-free (``X-Shopify-Access-Token``)."""
    for piece in _SEPARATORS.split(run):
        if len(piece) > 1 and _WORDS.fullmatch(piece) is None:
            return False
        if len(piece) == 1 and not ("a" <= piece.lower() <= "z"):
            return False
    return True


def _long(match: re.Match[str]) -> str:
    run = match.group(0)
    if run.isdigit():
        return "<n>"
    if _UUID.fullmatch(run):
        return "<uuid>"
    if _HEX_DIGITS.issuperset(run) and not run.isalpha():
        return "<hex>"
    return run if _made_of_words(run) else "<id>"


def _part(part: str) -> str:
    if part.isdigit():
        return "<n>"
    unit = _UNIT.fullmatch(part)
    if unit is not None:
        return "<n>" + unit.group(1)
    if len(part) < 8:
        return _DIGIT_RUN.sub("<n>", part)
    if _HEX_DIGITS.issuperset(part):
        return "<hex>"
    digits = sum(c.isdigit() for c in part)
    if digits >= 2 and digits < len(part):
        return "<id>"
    return _DIGIT_RUN.sub("<n>", part)


def _token(match: re.Match[str]) -> str:
    token = match.group(0)
    if _IPV4.fullmatch(token):
        return "<ip>"
    if _NUMBER.fullmatch(token):
        return "<n>"
    if _UUID.fullmatch(token):
        return "<uuid>"
    return "".join(_part(p) for p in _PARTS.split(token))


def _plain(text: str) -> str:
    """The masks that apply anywhere (URLs already done)."""
    if "host=" in text:
        text = _HOST_ARG.sub("host=<host>", text)
    if "@" in text:
        text = _EMAIL.sub("<email>", text)
    text = _CREDENTIAL.sub(_credential, text)
    return _TOKEN.sub(_token, _LONG.sub(_long, text))


def _query(query: str | None) -> str:
    if not query:
        return ""
    names = []
    for pair in query.split("&"):
        name, sep, _value = pair.partition("=")
        names.append(f"{_plain(name)}=<value>" if sep else _plain(name))
    return "?" + "&".join(names)


def _url(match: re.Match[str]) -> str:
    host = "<host>" if match.group("netloc") else ""
    path = _plain(match.group("path"))
    return f"{match.group('scheme')}://{host}{path}{_query(match.group('query'))}"


def message(text: str | None) -> str:
    """``text`` with what differs between similar messages masked (``NO_MESSAGE``: none)."""
    if text is None:
        return NO_MESSAGE
    text = " ".join(text.lstrip()[: MAX_LENGTH * 4].split())
    if not text:
        return NO_MESSAGE
    head = _STATUS_HEAD.match(text)
    kept = head.group(0) if head else ""
    rest = text[len(kept) :]
    if "://" in rest:
        rest = _URL.sub(_url, rest)
    masked = kept + _plain(rest)
    return masked if len(masked) <= MAX_LENGTH else masked[: MAX_LENGTH - 1] + "…"


_URL_WHOLE: Final = re.compile(
    r"(?:[a-zA-Z][a-zA-Z0-9+.-]*:)?(?://[^/?#]*)?(?P<path>[^?#]*)(?:\?(?P<query>[^#]*))?"
)


def endpoint(method: str | None, url: str | None) -> str:
    """``METHOD /path`` of a request, masked as a URL in a message is, without its host.

    ``""`` when the log names no URL.
    """
    if not url:
        return ""
    parts = _URL_WHOLE.match(url.strip())
    if parts is None:  # pragma: no cover - the pattern matches any text
        return ""
    path = _plain(parts.group("path")) or "/"
    shown = f"{(method or '').upper()} {path}{_query(parts.group('query'))}".strip()
    return shown if len(shown) <= MAX_LENGTH else shown[: MAX_LENGTH - 1] + "…"


#: Every ASCII digit as ``0`` (UTF-8 bytes: no other byte is an ASCII digit).
_ZEROS: Final = bytes.maketrans(b"123456789", b"000000000")
#: Masked texts remembered, per memo, before it starts over.
MEMO_SIZE: Final = 4_096


class Masker:
    """``message`` and ``endpoint`` with memos, for a stream of logs.

    Messages of one kind differ in their numbers (an order id, a port), so the memo's
    key is the text with every ASCII digit as ``0``: every rule above depends on where
    the digits are, never on which they are, and masks every digit but those of the
    leading status (kept in the key), so the masked key is the masked text. Each memo
    holds ``MEMO_SIZE`` entries at most, and starts over when full.
    """

    __slots__ = ("_endpoints", "_messages")

    def __init__(self) -> None:
        self._messages: dict[bytes, str] = {}
        self._endpoints: dict[tuple[str | None, bytes], str] = {}

    def message(self, text: str | None) -> str:
        """``message(text)``."""
        if text is None:
            return NO_MESSAGE
        text = text.lstrip()  # as ``message`` does first: the status then starts the text
        head = 3 if _STATUS_HEAD.match(text) else 0
        raw = text.encode("utf-8", "surrogatepass")
        key = raw[:head] + raw[head:].translate(_ZEROS)
        memo = self._messages
        masked = memo.get(key)
        if masked is None:
            if len(memo) >= MEMO_SIZE:
                memo.clear()
            masked = memo[key] = message(key.decode("utf-8", "surrogatepass"))
        return masked

    def endpoint(self, method: str | None, url: str | None) -> str:
        """``endpoint(method, url)``."""
        if not url:
            return ""
        key = (method, url.encode("utf-8", "surrogatepass").translate(_ZEROS))
        memo = self._endpoints
        masked = memo.get(key)
        if masked is None:
            if len(memo) >= MEMO_SIZE:
                memo.clear()
            masked = memo[key] = endpoint(method, key[1].decode("utf-8", "surrogatepass"))
        return masked
