"""``aiohttp_handler``: an ``aiohttp.web`` handler that verifies, decodes and hands on events.

With a ledger, each event goes through ``EventLedger.handling`` (the only way an
event is claimed and admitted), so the handler and your own code behave alike.
aiohttp is imported when a handler is built, not with this module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Final

from .._errors import DecodeError, InvalidInputError, StateUnavailableError
from .._validate import positive_int
from ._events import WebhookEvent
from ._ledger import EventInFlightError, EventLedger, event_key, logger
from ._parse import EventTooOldError, max_age_limit, parse_event
from ._signature import SIGNATURE_HEADER, InvalidSignatureError, secret_keys

if TYPE_CHECKING:
    from aiohttp import web

_DEFAULT_MAX_BODY: Final = 1024 * 1024
#: What the receiver asks for in ``Retry-After`` when a delivery is busy elsewhere.
_IN_FLIGHT_RETRY_AFTER: Final = "60"


def _refusal(
    secret: object, callback: object, max_body_size: object, max_age: object, ledger: object
) -> InvalidInputError | None:
    """The refusal of the first bad argument of ``aiohttp_handler``, or ``None``.

    Returned without a traceback, not raised: the frames of the checks hold the secret.
    """
    try:
        secret_keys(secret)
        if not callable(callback):
            raise InvalidInputError(
                f"callback must be an async callable, got {type(callback).__name__}"
            )
        positive_int(max_body_size, "max_body_size")
        max_age_limit(max_age)
        if ledger is not None and not isinstance(ledger, EventLedger):
            raise InvalidInputError(
                f"ledger must be an EventLedger or None, got {type(ledger).__name__}"
            )
    except InvalidInputError as exc:
        return exc.with_traceback(None)
    return None


def aiohttp_handler(
    secret: str | Sequence[str],
    callback: Callable[[WebhookEvent], Awaitable[object]],
    *,
    max_body_size: int = _DEFAULT_MAX_BODY,
    max_age: float | None = None,
    ledger: EventLedger | None = None,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An ``aiohttp.web`` handler that verifies, decodes and hands each event to ``callback``.

    Register it for POST on the path of your ``webhook_url``. ``secret`` is one
    secret or a sequence of them (rotation); ``max_age`` is passed to
    ``parse_event``. It answers:

    * 413 ``{"error": "payload too large"}`` if ``Content-Length`` or the body
      read exceeds ``max_body_size`` bytes (the application's own
      ``client_max_size`` also applies);
    * 401 ``{"error": "invalid signature"}`` if ``Sendcloud-Signature`` is
      missing, malformed or wrong;
    * 400 ``{"error": "invalid payload"}`` if a correctly signed body is not a
      decodable event, and 400 ``{"error": "event too old"}`` if it is outside
      ``max_age``;
    * 200 ``{"status": "ok"}`` after ``await callback(event)`` returned.

    With a ``ledger`` (an ``EventLedger`` or a ``RedisEventLedger``), each event
    goes through ``ledger.handling``: a duplicate or stale event is answered
    200 ``{"status": "duplicate"}`` / ``{"status": "stale"}`` without calling
    ``callback`` (so Sendcloud stops retrying) and counted in ``ledger.counts``;
    a new one is admitted only after ``callback`` returned. A delivery that
    arrives while another for the same object is being handled is answered 409
    ``{"error": "event in progress"}`` with ``Retry-After: 60``, and 503
    ``{"error": "ledger unavailable"}`` if the ledger cannot be reached: both
    make Sendcloud deliver it again later. If the ledger cannot record an event
    after ``callback`` returned, the answer is still 200 (``handling`` logs it).

    Error bodies never say more than that; the reason is logged on the
    ``sendcloud_async.webhooks`` logger at WARNING, without the secret or the
    signature. An exception from ``callback`` is not caught: aiohttp answers
    500, the event is not admitted, and Sendcloud retries it later.

    Every argument is checked here, at start-up, not on the first event: a bad one
    raises ``sendcloud_async.InvalidInputError``.
    """
    from aiohttp import web

    error = _refusal(secret, callback, max_body_size, max_age, ledger)
    if error is not None:
        del secret  # the raising frame holds no secret (error trackers record frame locals)
        raise error
    limit = max_age_limit(max_age)

    def reject(status: int, error: str) -> web.Response:
        return web.json_response({"error": error}, status=status)

    async def read_event(request: web.Request) -> WebhookEvent | web.Response:
        """The verified, decoded event, or the response that refuses the request."""
        length = request.content_length
        if length is not None and length > max_body_size:
            logger.warning(
                "webhook from %s rejected: Content-Length %d exceeds %d bytes",
                request.remote,
                length,
                max_body_size,
            )
            return reject(413, "payload too large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            logger.warning(
                "webhook from %s rejected: body exceeds the application's client_max_size",
                request.remote,
            )
            return reject(413, "payload too large")
        if len(body) > max_body_size:
            logger.warning(
                "webhook from %s rejected: body of %d bytes exceeds %d bytes",
                request.remote,
                len(body),
                max_body_size,
            )
            return reject(413, "payload too large")
        try:
            signature = request.headers.get(SIGNATURE_HEADER)
            return parse_event(body, signature=signature, secret=secret, max_age=limit)
        except InvalidSignatureError as exc:
            logger.warning("webhook from %s rejected: %s", request.remote, exc)
            return reject(401, "invalid signature")
        except DecodeError as exc:
            logger.warning("webhook from %s rejected: %s", request.remote, exc)
            return reject(400, "invalid payload")
        except EventTooOldError as exc:
            logger.warning("webhook from %s rejected: %s", request.remote, exc)
            return reject(400, "event too old")

    async def handle_sendcloud_webhook(request: web.Request) -> web.StreamResponse:
        event = await read_event(request)
        if isinstance(event, web.Response):
            return event
        logger.debug("webhook %s received from %s", event.action, request.remote)
        if ledger is None:
            await callback(event)
            return web.json_response({"status": "ok"})
        entered = False
        try:
            async with ledger.handling(event) as verdict:
                entered = True
                if verdict == "new":
                    await callback(event)
        except EventInFlightError as exc:
            if entered:  # raised by the callback: not the ledger's answer
                raise
            logger.info("webhook %s from %s deferred: %s", event.action, request.remote, exc)
            return web.json_response(
                {"error": "event in progress"},
                status=409,
                headers={"Retry-After": _IN_FLIGHT_RETRY_AFTER},
            )
        except StateUnavailableError as exc:
            if entered:
                raise
            logger.warning("webhook %s from %s deferred: %s", event.action, request.remote, exc)
            return reject(503, "ledger unavailable")
        if verdict != "new":
            logger.info(
                "webhook %s for %s is %s; answered 200 without calling the handler",
                event.action,
                event_key(event).scope,
                verdict,
            )
            return web.json_response({"status": verdict})
        return web.json_response({"status": "ok"})

    return handle_sendcloud_webhook
