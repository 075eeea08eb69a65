"""The fake's OAuth2 token endpoint: client-credentials grant, opaque expiring tokens.

It speaks RFC 6749 section 4.4: a form-encoded POST with
``grant_type=client_credentials`` (and optionally ``scope``), the client
authenticated by HTTP Basic (``client_secret_basic``, as Sendcloud documents)
or, accepted but recorded, by ``client_id``/``client_secret`` form fields
(``client_secret_post``). Errors use RFC 6749's JSON error format.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import Counter
from typing import Final
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web

from ._request import Authorization

__all__ = ["TokenIssuer"]

_ENCODER: Final = msgspec.json.Encoder()
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _oauth_error(status: int, error: str, description: str, **headers: str) -> web.Response:
    body = _ENCODER.encode({"error": error, "error_description": description})
    return web.Response(
        status=status,
        body=body,
        content_type="application/json",
        headers={**_NO_STORE, **headers},
    )


class TokenIssuer:
    """Issues, checks and revokes bearer tokens for one client id/secret pair."""

    def __init__(self, client_id: str, client_secret: str) -> None:
        self._client_id = client_id.encode()
        self._client_secret = client_secret.encode()
        #: Every client the endpoint accepts: id -> secret (``add_client`` adds more).
        self._clients: dict[bytes, bytes] = {self._client_id: self._client_secret}
        #: Which client each issued token belongs to.
        self._owners: dict[str, str] = {}
        #: Tokens issued per client id.
        self.requests_by_client: Counter[str] = Counter()
        #: Lifetime in seconds sent as ``expires_in``; ``None`` omits it (tokens then
        #: never expire on the fake, until revoked).
        self.expires_in: float | None = 3600.0
        #: Scopes a client may ask for.
        self.scopes: frozenset[str] = frozenset({"api"})
        #: Tokens the API accepts now (revoking one = discarding it).
        self.active: set[str] = set()
        #: Every token ever issued, in order (for secret scanning in tests).
        self.issued: list[str] = []
        #: How each token request authenticated: "client_secret_basic",
        #: "client_secret_post" or "none".
        self.auth_methods: list[str] = []
        self.requests = 0
        self._expiry: dict[str, float] = {}

    def add_client(self, client_id: str, client_secret: str) -> None:
        """Accept another client id/secret pair."""
        self._clients[client_id.encode()] = client_secret.encode()

    def owner_of(self, token: str) -> str:
        """The client id a token was issued to (the first client's for tokens added by hand)."""
        return self._owners.get(token) or self._client_id.decode()

    def is_valid(self, token: str) -> bool:
        """Whether ``token`` is active and not expired."""
        if token not in self.active:
            return False
        expiry = self._expiry.get(token)
        if expiry is not None and time.monotonic() >= expiry:
            self.active.discard(token)
            return False
        return True

    def revoke(self, token: str | None = None) -> int:
        """Revoke one token, or every active token; returns how many were revoked."""
        if token is not None:
            if token in self.active:
                self.active.discard(token)
                return 1
            return 0
        count = len(self.active)
        self.active.clear()
        return count

    def _client_auth(
        self, authorization: Authorization, form: dict[str, str]
    ) -> tuple[str, bytes | None, bytes | None]:
        if authorization.scheme == "basic":
            pair = authorization.basic_pair
            if pair is None:  # not base64
                return "client_secret_basic", None, None
            return "client_secret_basic", pair[0], pair[1]
        if "client_id" in form:
            posted = form.get("client_secret")
            method = "client_secret_post" if posted is not None else "none"
            return method, form["client_id"].encode(), None if posted is None else posted.encode()
        return "none", None, None

    def handle(self, method: str, authorization: Authorization, body: bytes) -> web.Response:
        """Answer one request to the token endpoint."""
        if method != "POST":
            return _oauth_error(
                405, "invalid_request", "The token endpoint only accepts POST.", Allow="POST"
            )
        self.requests += 1
        try:
            form = dict(
                parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=False)
            )
        except UnicodeDecodeError:
            form = {}
        auth_method, cid, secret = self._client_auth(authorization, form)
        self.auth_methods.append(auth_method)
        expected = self._clients.get(cid) if cid is not None else None
        if (
            cid is None
            or secret is None
            or expected is None
            or not hmac.compare_digest(secret, expected)
        ):
            return _oauth_error(
                401,
                "invalid_client",
                "Client authentication failed.",
                **{"WWW-Authenticate": 'Basic realm="oauth2"'},
            )
        grant = form.get("grant_type")
        if grant is None:
            return _oauth_error(400, "invalid_request", "Missing grant_type parameter.")
        if grant != "client_credentials":
            return _oauth_error(
                400, "unsupported_grant_type", f"Grant type {grant!r} is not supported."
            )
        requested = form.get("scope", "")
        scopes = set(requested.split()) if requested else set(self.scopes)
        unknown = scopes - self.scopes
        if unknown:
            return _oauth_error(
                400, "invalid_scope", f"Unknown scope: {' '.join(sorted(unknown))}."
            )
        token = secrets.token_urlsafe(24)
        self.issued.append(token)
        self.active.add(token)
        owner = cid.decode(errors="replace")
        self._owners[token] = owner
        self.requests_by_client[owner] += 1
        payload: dict[str, object] = {
            "access_token": token,
            "token_type": "Bearer",
            "scope": " ".join(sorted(scopes)),
        }
        if self.expires_in is not None:
            self._expiry[token] = time.monotonic() + self.expires_in
            payload["expires_in"] = self.expires_in
        return web.Response(
            body=_ENCODER.encode(payload), content_type="application/json", headers=_NO_STORE
        )
