"""One call of the request path: its operation, its state across attempts, its response.

An ``Operation`` is what the transport needs besides a call's arguments (the
table is ``_operations``). A ``Request`` is one call, from its first attempt to
its last: what is sent (the same for every attempt), how far the current attempt
got, and the one place credentials are put on a request (only to the API's
origin): as the attempt's aiohttp middleware, or, for a GET with static
credentials on the SDK's own connector (``direct``), in the headers of a request
that aiohttp does not let follow a redirect: ``redirect`` then says where aiohttp
would have gone, and the rest of the attempt goes through the middleware. A ``Response`` is a 2xx
answer, fully read, decoded when used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypeVar

import aiohttp
import msgspec
from aiohttp import hdrs
from multidict import CIMultiDictProxy
from yarl import URL

from ._errors import DecodeError, SendcloudError
from ._flows import AuthFlow
from ._redact import Redactor
from ._retry import is_idempotent

if TYPE_CHECKING:
    from ._auth import Secret
    from ._options import ClientOptions

__all__ = ["NO_CONTENT", "Decoder", "Operation", "Request", "Response", "display_url"]

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)


class Decoder(Protocol[_T_co]):
    """A msgspec decoder, or anything with the same ``decode``."""

    def decode(self, buf: bytes, /) -> _T_co: ...


class _NoContent:
    """The decoder of an operation whose answer carries nothing the caller reads."""

    __slots__ = ()

    def decode(self, buf: bytes, /) -> None:
        return None


#: The response type of an operation that returns nothing (``None``).
NO_CONTENT: Final = _NoContent()


@dataclass(frozen=True, slots=True)
class Operation(Generic[_T]):
    """One operation of the API: what the transport needs besides a call's arguments.

    ``name`` is the SDK's (``"logs.list"``), ``template`` the path below the base
    URL with ``{name}`` placeholders (``"/integrations/{id}/logs"``), ``decoder``
    reads a 2xx body into the response type (``NO_CONTENT``: nothing to read).
    ``idempotent`` says whether the request may be repeated after it may have
    been sent; by default what the method says (``_retry.is_idempotent``). Name
    and template travel with every request, for logs and the observer's events
    (the template is OpenTelemetry's ``url.template``).
    """

    name: str
    method: str
    template: str
    decoder: Decoder[_T]
    idempotent: bool | None = None
    #: ``idempotent``, or what the method says when it is ``None``.
    repeatable: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        repeatable = is_idempotent(self.method) if self.idempotent is None else self.idempotent
        object.__setattr__(self, "repeatable", repeatable)


#: The statuses aiohttp follows as redirects (when it follows them).
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
#: What aiohttp strips from around, and removes from within, a ``Location`` it reads.
_C0_CONTROL_OR_SPACE: Final = "".join(map(chr, range(0x21)))
_TAB_OR_NEWLINE: Final = str.maketrans("", "", "\t\n\r")


def _has_no_authority(location: str, scheme: str) -> bool:
    """Whether ``location`` (with ``scheme``) has no ``//`` after its scheme (aiohttp's rule:
    ``http:/path`` is a path on the current origin, as browsers read it)."""
    location = location.strip(_C0_CONTROL_OR_SPACE).translate(_TAB_OR_NEWLINE)
    rest = location[len(scheme) + 1 : len(scheme) + 3]
    return rest[:1] not in ("/", "\\") or rest[1:] not in ("/", "\\")


def display_url(url: URL) -> str:
    """The URL as shown in errors and logs: never with user info."""
    if url.user is not None or url.password is not None:
        url = url.with_user(None)
    return str(url)


class Response:
    """A fully read response: nothing stays open once the caller has it."""

    __slots__ = ("body", "headers", "method", "status", "url")

    def __init__(
        self, method: str, url: URL, status: int, headers: CIMultiDictProxy[str], body: bytes
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body

    def decode(self, decoder: Decoder[_T]) -> _T:
        """The body decoded by ``decoder``; ``DecodeError`` if it does not fit."""
        try:
            return decoder.decode(self.body)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            reason = "it is nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            failure = DecodeError(
                f"could not decode the {self.status} response: {reason[:300]}",
                method=self.method,
                url=display_url(self.url),
                status=self.status,
            )
        raise failure


class Request:
    """One call of the request path, from its first attempt to its last.

    What is sent (operation, URL, body) is fixed when the call starts and the
    same for every attempt. The rest says how far the current attempt got
    (``waiting`` for credentials, whether the tracing signals ran and saw a
    connection), which tells a timeout that fired before anything was sent from
    one that may have been sent; ``attempt`` resets it. The request is also the
    attempt's aiohttp middleware, which scopes the credentials to the API's
    origin. One object per call, whatever the number of attempts.
    """

    __slots__ = (
        "_shown",
        "attempt",
        "attempts",
        "body",
        "config",
        "connected",
        "flow",
        "op",
        "session",
        "traced",
        "url",
        "used",
        "waiting",
    )

    def __init__(
        self,
        op: Operation[Any],
        url: URL,
        body: bytes | None,
        config: ClientOptions,
        flow: AuthFlow,
        session: aiohttp.ClientSession,
    ) -> None:
        self.op = op
        self.url = url
        #: ``shown``, once something asked for it.
        self._shown: str | None = None
        self.body = body
        self.config = config
        self.flow = flow
        self.session = session
        self.attempt = 0
        self.waiting = False
        self.traced = False
        self.connected = False
        #: The ``attempts`` of the session's connector (``_sessions.SDKConnector``),
        #: which tells the attempt it got a connection; ``None``: the tracing signals do.
        self.attempts: dict[aiohttp.ClientRequest, Request] | None = None
        #: The ``Authorization`` value last written into the request.
        self.used: Secret | None = None

    @property
    def shown(self) -> str:
        """The URL as errors, logs and events show it: computed when first needed."""
        shown = self._shown
        if shown is None:
            shown = self._shown = display_url(self.url)
        return shown

    def display(self) -> str:
        """``shown``, as a function (for ``_observe.begin``, which calls it only if observed)."""
        return self.shown

    def next_attempt(self) -> int:
        """Start the next attempt (numbered from 1) with nothing known about it yet."""
        self.attempt += 1
        self.waiting = False
        self.traced = False
        self.connected = False
        self.used = None
        return self.attempt

    @property
    def sent(self) -> bool:
        """Whether the attempt may have reached the server (``True`` when unknown)."""
        if self.waiting:
            return False
        return self.connected or not self.traced

    def direct(self) -> Secret | None:
        """The credential of an attempt sent without the middleware, or ``None``.

        Only a repeatable GET without a body, with static credentials, on the SDK's
        own connector: its credential is at hand and never refreshed, and whether it
        got a connection does not matter (a repeatable request is retried either
        way). aiohttp does not follow its redirect: ``redirect`` says where it goes,
        and the rest goes through the middleware, as a followed hop would. A URL off
        the API's origin (none gets here: next-page links are checked before) goes
        through the middleware too, which refuses it.
        """
        if self.attempts is None or self.body is not None or self.op.method != "GET":
            return None
        flow = self.flow
        if flow.refreshable or not self.op.repeatable:
            return None
        url = self.url
        if (url.scheme, url.host, url.port) != self.config.origin:
            return None
        value = self.used = flow.at_hand()
        return value

    def redirect(self, resp: aiohttp.ClientResponse, requote: bool) -> URL | None:
        """Where aiohttp would follow ``resp`` to (``None``: it would not), by its rules.

        ``requote``: the session's ``requote_redirect_url``. A ``Location`` that is no
        URL, or no http(s) one, raises aiohttp's own error, as following would.
        """
        if resp.status not in _REDIRECTS:
            return None
        location = resp.headers.get(hdrs.LOCATION) or resp.headers.get(hdrs.URI)
        if location is None:
            return None
        try:
            target = URL(location, encoded=not requote)
        except ValueError as exc:
            raise aiohttp.InvalidUrlRedirectClientError(
                location,
                "Server attempted redirecting to a location that does not look like a URL",
            ) from exc
        scheme = target.scheme
        if scheme not in ("http", "https", ""):
            raise aiohttp.NonHttpUrlRedirectClientError(location)
        url = self.url
        if not scheme or (scheme == url.scheme and _has_no_authority(location, scheme)):
            target = url.join(target)
        try:
            target.origin()
        except ValueError as exc:
            raise aiohttp.InvalidUrlRedirectClientError(
                target, "Invalid redirect URL origin"
            ) from exc
        if not target.raw_host:
            raise aiohttp.InvalidUrlRedirectClientError(target)
        return target

    async def __call__(
        self, req: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        url = req.url
        if (url.scheme, url.host, url.port) != self.config.origin:
            # Not the API's origin: only a redirect gets here (next-page links are
            # checked before). Following it would send the session's own headers
            # (aiohttp strips only Authorization) and a 307/308 body there, and take
            # its answer for the API's: refuse, as for a foreign Link.
            raise SendcloudError(
                "refusing to follow a redirect to another origin "
                f"({url.scheme}://{url.host}:{url.port}); no request was sent there"
            )
        flow = self.flow
        value = flow.at_hand()  # static credentials: nothing to wait for
        if value is None:
            value = await self._authorization()
        else:
            self.used = value
        req.headers[hdrs.AUTHORIZATION] = value.get_secret_value()
        attempts = self.attempts
        if attempts is not None:
            attempts[req] = self  # for the connector, while ``req`` is in flight
        try:
            resp = await handler(req)
            if resp.status != 401 or not flow.refreshable or not await flow.invalidate(value):
                return resp
            resp.release()
            value = await self._authorization()
            req.headers[hdrs.AUTHORIZATION] = value.get_secret_value()
            return await handler(req)
        finally:
            if attempts is not None:
                attempts.pop(req, None)

    async def _authorization(self) -> Secret:
        self.waiting = True
        config = self.config
        value = self.used = await self.flow.authorization(
            self.session, config.timeout, config.body_limit
        )
        self.waiting = False
        return value

    def redactor(self) -> Redactor | None:
        """What to mask in an error built from the answer: the credential that was sent."""
        used = self.used
        return None if used is None else Redactor.for_authorization(used.get_secret_value())

    def extra(self) -> dict[str, str]:
        """The operation's name and path template, as attributes of a log record."""
        return {"operation": self.op.name, "url_template": self.op.template}
