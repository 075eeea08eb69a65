"""msgspec Structs named after the schemas of the Integrations API v3.

Decoding decisions (the spec contradicts itself in places; we accept every form
it shows and document the choice here and in the README):

* Unknown fields in responses are ignored (msgspec's default), so fields the
  server adds later never break a client.
* Response fields the spec does not mark ``required`` default to ``None`` (or an
  empty value) when absent; only what the spec requires must be present.
* ``ErrorObject.status`` is typed ``string`` in the schema but is an integer in
  most examples: both decode, and it is exposed as ``int`` (``None`` if absent).
  ``code`` is an open string: the server sends codes outside the enum
  (``extra_forbidden``). ``errors`` may be a list or a single object.
* ``IntegrationLog`` keeps the spec's unions: ``response.body`` is
  ``str | dict | None``; ``request.headers`` and ``request.payload`` are
  ``dict | str | None``; ``additional_data`` is ``dict | str | None``.
* Date-times are aware ``datetime`` objects. A date-time without an offset
  (RFC 3339 requires one, but a lenient reader should not fail a whole page on
  it) is taken as UTC.
* Enumerated request values (``feedback_type``, languages, status categories)
  are checked before sending; in responses they are plain strings so that a new
  value on the server never breaks decoding.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import msgspec

from ._time import as_utc

__all__ = [
    "ErrorObject",
    "ErrorSource",
    "Integration",
    "IntegrationLog",
    "LogPage",
    "LogRequest",
    "LogResponse",
    "ShopOrderStatus",
    "ShopOrderStatusInput",
    "StatusMapping",
    "StatusMappingEntry",
    "StatusTranslation",
]

T = TypeVar("T")

#: A datetime that must carry an offset: checked by msgspec in C, no Python per value.
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


class Integration(msgspec.Struct, kw_only=True):
    """An integration (``integration-response-model``)."""

    id: int
    shop_name: str | None = None
    shop_url: str | None = None
    type: str | None = None
    started_failing_at: AwareDatetime | None = None
    last_fetched_at: AwareDatetime | None = None
    created_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None
    service_point_enabled: bool = False
    service_point_carriers: list[str] = msgspec.field(default_factory=list)
    webhook_active: bool = False
    webhook_url: str | None = None
    feedback_type: str | None = None


class _LenientIntegration(Integration, kw_only=True):
    # The same integration, but a date-time without an offset is accepted (taken as UTC).
    started_failing_at: datetime | None = None
    last_fetched_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class LogResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The shop's response recorded in a log (``integration-log.response``)."""

    headers: dict[str, Any] | None = None
    body: str | dict[str, Any] | None = None


class LogRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The request Sendcloud sent to the shop, recorded in a log (``integration-log.request``)."""

    headers: dict[str, Any] | str | None = None
    payload: dict[str, Any] | str | None = None


class IntegrationLog(msgspec.Struct, kw_only=True):
    """An exception log record (``integration-log``)."""

    base_url: str
    id: int | None = None
    integration_id: int | None = None
    full_url: str | None = None
    method: str | None = None
    response_code: int | None = None
    response: LogResponse | None = None
    request: LogRequest | None = None
    created_at: AwareDatetime | None = None
    exception_type: str | None = None
    exception: str | None = None
    protected: bool = False
    additional_data: dict[str, Any] | str | None = ""


class _LenientIntegrationLog(IntegrationLog, kw_only=True):
    # The same record, but a date-time without an offset is accepted (and taken as UTC).
    created_at: datetime | None = None


class LogStamp(msgspec.Struct, kw_only=True, gc=False):
    """Where a log stands in the listing: its ``id`` and ``created_at``, nothing else.

    A watch reads a page as stamps first (msgspec skips every other field of the
    record without building it) and decodes in full only the logs it delivers, so
    an idle poll that re-reads the lookback window builds no ``IntegrationLog``.
    Not tracked by the garbage collector (an int and a datetime hold no cycle): the
    stamps an idle poll makes never add to a collection's work.
    """

    id: int | None = None
    created_at: AwareDatetime | None = None


class _LenientLogStamp(msgspec.Struct, kw_only=True, gc=False):
    id: int | None = None
    created_at: datetime | None = None


class LogPage(msgspec.Struct, kw_only=True):
    """One page of exception logs.

    ``next_cursor`` passed back as ``cursor=`` resumes exactly after this page;
    it is ``None`` on the last page.
    """

    items: list[IntegrationLog]
    next_cursor: str | None = None
    next_url: str | None = None


class StatusTranslation(msgspec.Struct):
    """A shop order status name in one language."""

    status: str
    language: str


class ShopOrderStatus(msgspec.Struct, kw_only=True):
    """A shop order status as the server returns it."""

    external_id: str
    status: str | None = None
    deleted_at: datetime | None = None
    translations: list[StatusTranslation] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        self.deleted_at = as_utc(self.deleted_at)


class ShopOrderStatusInput(msgspec.Struct):
    """A shop order status to send with ``shop_order_statuses.replace``."""

    external_id: str
    translations: list[StatusTranslation]


class StatusMappingEntry(msgspec.Struct, omit_defaults=True):
    """One Sendcloud status category mapped onto a shop ``external_id`` (or ``None``)."""

    status_category: str
    external_id: str | None
    is_valid: bool | None = None


class StatusMapping(msgspec.Struct, kw_only=True):
    """The custom status mapping of an integration."""

    integration_id: int
    mapping: list[StatusMappingEntry] = msgspec.field(default_factory=list)


class ErrorSource(msgspec.Struct, kw_only=True):
    """Where in the request an error was found."""

    pointer: str | None = None
    parameter: str | None = None
    header: str | None = None


class ErrorObject(msgspec.Struct, kw_only=True):
    """A JSON:API error object. ``status`` arrives as int or string and is exposed as ``int``."""

    status: int | None = None
    code: str | None = None
    title: str | None = None
    detail: str | None = None
    id: str | None = None
    source: ErrorSource | None = None
    links: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None


class Data(msgspec.Struct, Generic[T]):
    """The ``{"data": ...}`` envelope of every successful response."""

    data: T


class TolerantDecoder(Generic[T]):
    """Decodes with a strict decoder, falling back to a lenient one on a naive date-time.

    Exception logs are the hot path of bulk exports: their date-times are
    checked for an offset by msgspec itself (no Python per record). A page the
    strict decoder rejects is decoded a second time by the lenient type, which
    differs only in accepting a date-time without an offset: if that succeeds, the
    rejection was the offset, and the records are rebuilt through ``as_utc``; if
    it fails too, the strict decoder's error stands.
    """

    __slots__ = ("_fix", "_lenient", "_strict", "type")

    def __init__(self, type: Any, lenient: Any, fix: Any) -> None:
        self.type = type
        self._strict: msgspec.json.Decoder[T] = msgspec.json.Decoder(type)
        self._lenient: msgspec.json.Decoder[Any] = msgspec.json.Decoder(lenient)
        self._fix = fix

    def decode(self, buf: bytes) -> T:
        """Decode ``buf``; msgspec's ``DecodeError``/``ValidationError`` if it does not fit."""
        try:
            return self._strict.decode(buf)
        except msgspec.ValidationError as exc:
            strict_error = exc
        try:
            lenient = self._lenient.decode(buf)
        except (msgspec.ValidationError, msgspec.DecodeError):
            raise strict_error from None
        fixed: T = self._fix(lenient)
        return fixed


_S = TypeVar("_S", bound=msgspec.Struct)


def _strict(lenient: msgspec.Struct, strict: type[_S]) -> _S:
    """``lenient`` (a lenient subclass of ``strict``) as ``strict``: the date-times its class
    declares again (those it accepts without an offset) read as UTC (``as_utc``)."""
    values = {name: getattr(lenient, name) for name in lenient.__struct_fields__}
    for name in type(lenient).__annotations__:
        values[name] = as_utc(values[name])
    return strict(**values)


def _fix_log(doc: Data[_LenientIntegrationLog]) -> Data[IntegrationLog]:
    return Data(_strict(doc.data, IntegrationLog))


def _fix_logs(doc: Data[list[_LenientIntegrationLog]]) -> Data[list[IntegrationLog]]:
    return Data([_strict(log, IntegrationLog) for log in doc.data])


def _fix_stamps(doc: Data[list[_LenientLogStamp]]) -> Data[list[LogStamp]]:
    return Data([LogStamp(id=stamp.id, created_at=as_utc(stamp.created_at)) for stamp in doc.data])


def _fix_integration(doc: Data[_LenientIntegration]) -> Data[Integration]:
    return Data(_strict(doc.data, Integration))


def _fix_integrations(doc: Data[list[_LenientIntegration]]) -> Data[list[Integration]]:
    return Data([_strict(integration, Integration) for integration in doc.data])


# One decoder per response type, built once at import time. Date-times are checked for
# an offset by msgspec; a body with one without is decoded again leniently (as_utc).
INTEGRATION_DECODER: TolerantDecoder[Data[Integration]] = TolerantDecoder(
    Data[Integration], Data[_LenientIntegration], _fix_integration
)
INTEGRATION_LIST_DECODER: TolerantDecoder[Data[list[Integration]]] = TolerantDecoder(
    Data[list[Integration]], Data[list[_LenientIntegration]], _fix_integrations
)
LOG_DECODER: TolerantDecoder[Data[IntegrationLog]] = TolerantDecoder(
    Data[IntegrationLog], Data[_LenientIntegrationLog], _fix_log
)
LOG_LIST_DECODER: TolerantDecoder[Data[list[IntegrationLog]]] = TolerantDecoder(
    Data[list[IntegrationLog]], Data[list[_LenientIntegrationLog]], _fix_logs
)
#: A logs page read as stamps only (``LogStamp``): the watch's first look at a page.
LOG_STAMP_LIST_DECODER: TolerantDecoder[Data[list[LogStamp]]] = TolerantDecoder(
    Data[list[LogStamp]], Data[list[_LenientLogStamp]], _fix_stamps
)
SHOP_ORDER_STATUS_LIST_DECODER = msgspec.json.Decoder(Data[list[ShopOrderStatus]])
STATUS_MAPPING_DECODER = msgspec.json.Decoder(Data[StatusMapping])
