"""A webhook ledger store of the tests' own (a real ``LedgerStore`` whose chosen steps fail),
and how ``handling()`` and the aiohttp receiver must meet a store that cannot do a step."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, NamedTuple

import aiohttp
import pytest
from aiohttp import web

from sendcloud_async import StateUnavailableError, webhooks
from tests._serve import serving

_SECRET = "whsec-one-claim-path-41d7"


class ScriptedStore:
    """A memory store whose ``failing`` steps raise ``StateUnavailableError``, like a lost Redis.

    ``answer`` (when set) replaces the verdicts of ``admit`` and ``claim``; ``calls``
    lists every step asked for, in order.
    """

    def __init__(self, failing: frozenset[str] = frozenset(), answer: str | None = None) -> None:
        """Fail the ``failing`` steps; answer ``answer`` instead of the real verdicts."""
        self.inner = webhooks.MemoryLedgerStore()
        self.failing = failing
        self.answer = answer
        self.calls: list[str] = []

    def _step(self, name: str) -> None:
        """Record the step; raise if it is one that fails."""
        self.calls.append(name)
        if name in self.failing:
            raise StateUnavailableError(f"the store is down ({name})")

    async def admit(self, key: webhooks.LedgerKey) -> Any:
        """Check and record."""
        self._step("admit")
        outcome = await self.inner.admit(key)
        return outcome if self.answer is None else self.answer

    async def claim(self, key: webhooks.LedgerKey, token: str) -> Any:
        """Check and claim."""
        self._step("claim")
        outcome = await self.inner.claim(key, token)
        return outcome if self.answer is None else self.answer

    async def commit(self, key: webhooks.LedgerKey, token: str) -> None:
        """Record and drop the claim."""
        self._step("commit")
        await self.inner.commit(key, token)

    async def release(self, key: webhooks.LedgerKey, token: str) -> None:
        """Drop the claim."""
        self._step("release")
        await self.inner.release(key, token)

    async def size(self) -> int:
        """What the memory store holds."""
        self._step("size")
        return await self.inner.size()


class Unavailable(NamedTuple):
    """How ``handling()`` and the aiohttp receiver meet a store that cannot do one step."""

    #: What ``handling()`` raises (``None``: nothing).
    raised: type[BaseException] | None
    #: What the receiver answers.
    status: int
    #: Whether the work (the block, the callback) ran.
    worked: bool
    #: The ledger's counts afterwards.
    counts: dict[str, int]
    #: The ledger's WARNING up to its reason (``""``: none).
    warning: str


#: For each step the store cannot do (the work fails when the step is ``release``).
UNAVAILABLE: dict[str, Unavailable] = {
    "claim": Unavailable(StateUnavailableError, 503, False, {}, ""),
    "commit": Unavailable(
        None,
        200,
        True,
        {"new": 1},
        "webhook parcel_status_changed for parcel:7 was handled but could not be recorded: ",
    ),
    "release": Unavailable(
        RuntimeError, 500, True, {"failed": 1}, "could not release the claim on parcel:7: "
    ),
}


def ledger_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The ledger's WARNINGs up to their reason (not the receiver's "rejected"/"deferred")."""
    return [
        r.getMessage().partition(": ")[0] + ": "
        for r in caplog.records
        if r.name == "sendcloud_async.webhooks"
        and r.levelno == logging.WARNING
        and " from " not in r.getMessage()
    ]


async def meet_alike(
    step: str,
    open_ledger: Callable[[], AbstractAsyncContextManager[webhooks.EventLedger]],
    caplog: pytest.LogCaptureFixture,
    *,
    during_work: Callable[[], object] = lambda: None,
) -> None:
    """One event through ``handling()``, then through the aiohttp receiver: both as ``UNAVAILABLE``.

    ``open_ledger()`` gives each side a fresh ledger whose store cannot do ``step``
    (the step is ``release``: the work fails); ``during_work`` runs inside the work.
    """
    expected = UNAVAILABLE[step]
    body = json.dumps(
        {"action": "parcel_status_changed", "timestamp": 1000, "parcel": {"id": 7}}
    ).encode()
    signature = webhooks.sign(body, _SECRET)
    event = webhooks.parse_event(body, signature=signature, secret=_SECRET)
    caplog.set_level(logging.CRITICAL, logger="aiohttp.server")  # the callback's 500
    caplog.set_level(logging.WARNING, logger="sendcloud_async.webhooks")  # last: the handler's
    ran: list[str] = []

    async def work(event: webhooks.WebhookEvent) -> None:
        """The work (the block, the callback): recorded, failing for ``release``."""
        ran.append(event.action)
        during_work()
        if step == "release":
            raise RuntimeError("database is down")

    got: BaseException | None = None
    async with open_ledger() as direct:
        try:
            async with direct.handling(event) as verdict:
                assert verdict == "new"
                await work(event)
        except (StateUnavailableError, RuntimeError) as exc:
            got = exc
    direct_ran, direct_warnings = len(ran), ledger_warnings(caplog)
    caplog.clear()
    ran.clear()

    async with open_ledger() as served:
        app = web.Application()
        app.router.add_post("/hook", webhooks.aiohttp_handler(_SECRET, work, ledger=served))
        async with (
            serving(app, "/hook") as url,
            aiohttp.ClientSession() as session,
            session.post(url, data=body, headers={webhooks.SIGNATURE_HEADER: signature}) as resp,
        ):
            status, text = resp.status, await resp.text()

    assert type(got) is expected.raised if expected.raised else got is None
    assert status == expected.status
    if status == 503:
        assert json.loads(text) == {"error": "ledger unavailable"}
    assert (direct_ran, len(ran)) == ((1, 1) if expected.worked else (0, 0))
    assert direct.counts == served.counts == expected.counts
    assert direct_warnings == ledger_warnings(caplog)
    assert direct_warnings == ([expected.warning] if expected.warning else [])
