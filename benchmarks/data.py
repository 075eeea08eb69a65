"""Deterministic, realistic ``integration-log`` records for the benchmarks.

``generate_logs(count, seed)`` yields plain dicts shaped like the spec's
``integration-log`` schema, newest first (as the API pages them):

* ``id`` runs from ``count`` down to ``1``, so a consumer can check "every id
  exactly once" with a bitmap instead of a set that would distort peak RSS;
* ``created_at`` strictly decreases, always with a ``+01:00`` offset
  (``2025-01-31T23:59:59+01:00``), so the last record of a page is a unique
  cursor, and a cursor put into a URL has a ``+`` that must be sent as ``%2B``;
* each record is about 1 KB of JSON: a few request/response headers, an HTML
  (sometimes JSON-object) response body, a small JSON payload, and the spec's
  ``object | string | null`` variety for ``request.headers``,
  ``request.payload``, ``response.body`` and ``additional_data``, plus ``null``
  ``response``/``response_code`` for connection errors.

The same ``(count, seed)`` always gives byte-identical pages, whatever the
Python version, because only ``random.Random`` and integer arithmetic are used.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec

__all__ = ["CET", "FIRST_CREATED_AT", "generate_logs", "render_page"]

CET = timezone(timedelta(hours=1))
FIRST_CREATED_AT = datetime(2025, 1, 31, 23, 59, 59, tzinfo=CET)

_SHOP_NAMES = (
    "bloemenhuis-amsterdam",
    "cafe-mueller",
    "fietsenwinkel",
    "la-boutique-paris",
    "nordic-outdoor",
    "bücherstube-köln",
    "gadget-garage",
    "the-tea-tin",
    "mode-en-zo",
    "pet-paradise",
    "zapatos-madrid",
    "kinderkamer",
    "brouwerij-de-hop",
    "sportief",
    "vinyl-vault",
    "moda-milano",
    "green-thumb",
    "kaffeerösterei",
    "tech-trove",
    "hema-style",
)
_TLDS = ("nl", "de", "fr", "com", "be", "es", "it", "at")
_PLATFORMS = (
    # (platform name, order path template, user agent of the shop's server)
    ("woocommerce", "/wp-json/wc/v3/orders/{order}/notes", "nginx/1.24.0"),
    ("shopify", "/admin/api/2024-01/orders/{order}/fulfillments.json", "cloudflare"),
    ("magento", "/rest/V1/order/{order}/ship", "Apache/2.4.57 (Debian)"),
    ("prestashop", "/api/order_histories?output_format=JSON&order={order}", "Apache"),
    ("lightspeed", "/nl/orders/{order}/shipments.json", "openresty"),
)
_CARRIERS = ("postnl", "dhl", "dpd", "ups", "bpost", "colissimo", "gls")
_NOTES = (
    "Shipment created, tracking number attached",
    "Label printed — parcel handed over to the carrier",
    "Order fulfilled by Sendcloud",
    "Verzonden met PostNL, track & trace volgt",
    "Paket wurde an den Versanddienstleister übergeben",
)


def _html_page(title: str, detail: str, server: str, request_id: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n <head>\n'
        f"  <title>{title}</title>\n"
        " </head>\n <body>\n"
        f"  <h1>{title}</h1>\n"
        f"  <p>{detail}</p>\n"
        f'  <p class="muted">Request ID: {request_id}</p>\n'
        f"  <hr><address>{server}</address>\n"
        " </body>\n</html>\n"
    )


def generate_logs(count: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """Yield ``count`` integration-log records, newest first (ids ``count`` … ``1``)."""
    rng = random.Random(seed)
    shops = []
    for index, name in enumerate(_SHOP_NAMES):
        platform, path, server = _PLATFORMS[index % len(_PLATFORMS)]
        base = f"https://{name}.{_TLDS[index % len(_TLDS)]}"
        shops.append((base, 1000 + 7 * index, platform, path, server))
    created = FIRST_CREATED_AT
    for n in range(count):
        base_url, integration_id, platform, path, server = shops[rng.randrange(len(shops))]
        order = rng.randrange(100_000, 999_999)
        request_id = f"{rng.getrandbits(64):016x}-{rng.getrandbits(32):08x}"
        full_url = base_url + path.format(order=order)
        carrier = _CARRIERS[rng.randrange(len(_CARRIERS))]
        tracking = f"3S{carrier[:3].upper()}{rng.randrange(10**9, 10**10)}"
        kind = rng.random()
        method = "POST"
        response: dict[str, Any] | None
        response_code: int | None
        if kind < 0.30:
            response_code = 495
            exception_type = "requests.exceptions.SSLError"
            exception = (
                f"HTTPSConnectionPool(host='{base_url[8:]}', port=443): "
                "[SSL: CERTIFICATE_VERIFY_FAILED] certificate has expired"
            )
            body: str | dict[str, Any] | None = _html_page(
                "SSL Certificate Error",
                "The certificate of this shop expired; renew it in your hosting panel.",
                server,
                request_id,
            )
        elif kind < 0.55:
            response_code = 404
            exception_type = "requests.exceptions.HTTPError"
            exception = f"404 Client Error: Not Found for url: {full_url}"
            body = _html_page(
                "404 Not Found",
                f"The requested URL {path.format(order=order)} was not found on this server.",
                server,
                request_id,
            )
        elif kind < 0.70:
            response_code = 401
            exception_type = "requests.exceptions.HTTPError"
            exception = f"401 Client Error: Unauthorized for url: {full_url}"
            body = {
                "errors": "[API] Invalid API key or access token (unrecognized login)",
                "request_id": request_id,
            }
        elif kind < 0.80:
            response_code = 429
            exception_type = "requests.exceptions.HTTPError"
            exception = f"429 Client Error: Too Many Requests for url: {full_url}"
            body = {"errors": "Exceeded 2 calls per second for api client. Reduce request rates."}
        elif kind < 0.92:
            response_code = 500 + rng.choice((0, 2, 3))
            exception_type = "requests.exceptions.HTTPError"
            exception = f"{response_code} Server Error for url: {full_url}"
            body = _html_page(
                f"{response_code} Server Error",
                "The server encountered a temporary error and could not complete your request.",
                server,
                request_id,
            )
        else:
            response_code = None
            exception_type = rng.choice(
                ("requests.exceptions.ConnectionError", "requests.exceptions.ReadTimeout")
            )
            exception = (
                f"HTTPSConnectionPool(host='{base_url[8:]}', port=443): Read timed out. "
                "(read timeout=30)"
            )
            body = None
        if body is None:
            response = None
        else:
            is_html = isinstance(body, str)
            response = {
                "headers": {
                    "Server": server,
                    "Date": "Fri, 31 Jan 2025 22:59:59 GMT",
                    "Content-Type": (
                        "text/html; charset=utf-8" if is_html else "application/json; charset=utf-8"
                    ),
                    "Cache-Control": "no-cache, private",
                    "X-Request-Id": request_id,
                },
                "body": body,
            }
            if rng.random() < 0.05:
                response["headers"] = None
        note = _NOTES[rng.randrange(len(_NOTES))]
        pick = rng.random()
        payload: dict[str, Any] | str | None
        if pick < 0.75:
            payload = {
                "order_note": {"note": note, "customer_note": False},
                "tracking": {"carrier": carrier, "number": tracking, "url": None},
            }
        elif pick < 0.90:
            payload = f"status=shipped&carrier={carrier}&tracking_number={tracking}"
        else:
            method = "GET"
            payload = None
        pick = rng.random()
        headers: dict[str, Any] | str | None
        if pick < 0.80:
            headers = {
                "User-Agent": "Sendcloud/3.0 (+https://www.sendcloud.com)",
                "Accept": "application/json",
                "Content-Type": "application/json",
                "X-Sendcloud-Request": request_id,
            }
        elif pick < 0.92:
            headers = (
                "User-Agent: Sendcloud/3.0\r\nAccept: application/json\r\n"
                f"X-Sendcloud-Request: {request_id}"
            )
        else:
            headers = None
        request = None if rng.random() < 0.03 else {"headers": headers, "payload": payload}
        pick = rng.random()
        additional_data: dict[str, Any] | str
        if pick < 0.70:
            additional_data = ""
        elif pick < 0.95:
            additional_data = {"attempt": rng.randrange(1, 6), "platform": platform, "order": order}
        else:
            additional_data = f"retry scheduled for order {order}"
        yield {
            "id": count - n,
            "integration_id": None if rng.random() < 0.02 else integration_id,
            "base_url": base_url,
            "full_url": full_url,
            "method": method,
            "response_code": response_code,
            "response": response,
            "request": request,
            "created_at": created.isoformat(),
            "exception_type": exception_type,
            "exception": exception,
            "protected": rng.random() < 0.1,
            "additional_data": additional_data,
        }
        created -= timedelta(seconds=rng.randrange(1, 90))


def render_page(records: list[dict[str, Any]]) -> bytes:
    """Render one response body, ``{"data": [...]}``, as compact UTF-8 JSON."""
    return _encode({"data": records})


_encode = msgspec.json.Encoder().encode
