"""Every log record of the suite, at DEBUG, scanned for credentials (see tests/conftest.py).

A secret must never reach a log line, whatever the level. The SDK's loggers (and
aiohttp's and authlib's, which see credentials too) are set to DEBUG for every
test; the scanner sees every record that reaches the root logger or the
``sendcloud_async`` logger (the CLI stops that one propagating while it runs),
formatted with its traceback, and
looks for every credential the suite knows: FakeSendcloud's default key pair,
client secret and webhook secret, the Basic header they make, and every bearer
token a fake started during the test issued.
"""

from __future__ import annotations

import base64
import logging
import traceback
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from sendcloud_async.testing import FakeSendcloud

#: The credentials FakeSendcloud uses unless told otherwise.
DEFAULT_SECRETS = frozenset(
    {
        "fake-secret-key",
        "fake-client-secret",
        "fake-webhook-secret",
        base64.b64encode(b"fake-public-key:fake-secret-key").decode(),
        base64.b64encode(b"fake-client-id:fake-client-secret").decode(),
    }
)
_SDK_LOGGER = "sendcloud_async"
#: Loggers turned to DEBUG for the test: the SDK's and those of the libraries that
#: see credentials (the root logger keeps its level: others' debug chatter is not ours).
_DEBUG_LOGGERS = (_SDK_LOGGER, "aiohttp", "authlib")
# Shorter strings than this are not scanned for: they would match by accident.
_MIN_SECRET = 6


def secrets_of(fake: FakeSendcloud) -> set[str]:
    """The credentials one fake accepts or issued."""
    public = fake.public_key
    secret = fake.secret_key
    found = {
        secret,
        fake.client_secret,
        fake.webhook_secret,
        base64.b64encode(f"{public}:{secret}".encode()).decode(),
        base64.b64encode(f"{fake.client_id}:{fake.client_secret}".encode()).decode(),
    }
    found.update(fake.issued_tokens)
    return found


class SecretScanner(logging.Handler):
    """A logging handler that records every log line holding a known secret."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        #: Extra secrets a test wants watched.
        self.extra: set[str] = set()
        #: Offending lines, the secret replaced by ``<SECRET>``.
        self.findings: list[str] = []
        self.records = 0
        self._fakes: weakref.WeakSet[FakeSendcloud] = weakref.WeakSet()
        self._seen: weakref.WeakSet[logging.LogRecord] = weakref.WeakSet()

    def secrets(self) -> set[str]:
        """Every secret watched right now."""
        known = set(DEFAULT_SECRETS) | self.extra
        for fake in list(self._fakes):
            known |= secrets_of(fake)
        return {s for s in known if len(s) >= _MIN_SECRET}

    def emit(self, record: logging.LogRecord) -> None:
        if record in self._seen:  # reached both the SDK's logger and the root
            return
        self._seen.add(record)
        self.records += 1
        try:
            text = self.format(record)
        except Exception as exc:  # a broken record is reported, not raised
            text = f"{record.name}: unformattable record {record.msg!r} {record.args!r}: {exc}"
        for secret in self.secrets():
            if secret in text:
                self.findings.append(text.replace(secret, "<SECRET>"))

    def raise_for_findings(self) -> None:
        """Fail listing every log line that held a secret."""
        if self.findings:
            listed = "\n".join(f"  - {f}" for f in self.findings)
            raise AssertionError(f"{len(self.findings)} log record(s) hold a secret:\n{listed}")

    @contextmanager
    def watching(self) -> Iterator[SecretScanner]:
        """Capture every record at DEBUG and learn the secrets of every fake started."""
        root = logging.getLogger()
        sdk = logging.getLogger(_SDK_LOGGER)
        levels = {name: logging.getLogger(name).level for name in _DEBUG_LOGGERS}
        start = FakeSendcloud.start
        fakes = self._fakes

        async def registering_start(self: FakeSendcloud) -> None:
            fakes.add(self)
            await start(self)

        FakeSendcloud.start = registering_start  # type: ignore[method-assign]
        root.addHandler(self)
        sdk.addHandler(self)
        for name in _DEBUG_LOGGERS:
            logging.getLogger(name).setLevel(logging.DEBUG)
        try:
            yield self
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
            sdk.removeHandler(self)
            root.removeHandler(self)
            FakeSendcloud.start = start  # type: ignore[method-assign]


def everything_shown(exc: BaseException) -> str:
    """What an error tracker can record of ``exc``: its chain's str, repr, args and
    attributes, and the locals of every frame of every traceback in it."""
    texts = [
        "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())
    ]
    todo: list[BaseException] = [exc]
    seen: set[int] = set()
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args), repr(vars(current))]
        tb = current.__traceback__
        while tb is not None:
            texts += [repr(value) for value in tb.tb_frame.f_locals.values()]
            tb = tb.tb_next
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
    return "\n".join(texts)
