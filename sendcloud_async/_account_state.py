"""``AccountState``: what a ``LogWatcher`` keeps per account, and the one check of a
saved one (``check_account_state``) that every store reading it calls."""

from __future__ import annotations

from typing import Final

import msgspec

from ._errors import InvalidInputError
from ._models import AwareDatetime
from ._sources._watch_state import WatchState, check_state

__all__ = [
    "ACCOUNT_STATE_VERSION",
    "AccountState",
    "check_account_state",
    "decode_account_state",
]

ACCOUNT_STATE_VERSION: Final = 1


class AccountState(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """What a ``LogWatcher`` keeps per account: the log watch and the failing integrations.

    ``failing`` maps integration id to its ``started_failing_at``; ``None`` until
    the integrations were first looked at. Like ``WatchState``, it holds only values
    (ids, instants, ``WatchState``) and is left out of the garbage collector's
    tracking: a watcher of many accounts keeps one per account.
    """

    version: int = ACCOUNT_STATE_VERSION
    logs: WatchState
    failing: dict[int, AwareDatetime] | None = None


_ACCOUNT_DECODER: Final = msgspec.json.Decoder(AccountState)


def decode_account_state(raw: bytes, where: object) -> AccountState:
    """An ``AccountState`` from its JSON; ``InvalidInputError`` naming ``where`` otherwise."""
    try:
        state = _ACCOUNT_DECODER.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidInputError(f"the watch state {where} is damaged: {exc}") from None
    return check_account_state(state, where)


def check_account_state(state: AccountState, where: object) -> AccountState:
    """``state`` (decoded, maybe inside a larger state) if this version reads it and the
    ``WatchState`` in it, else ``InvalidInputError`` naming ``where``.

    The one check of a saved state: every store that reads one, and ``LogWatcher``
    on what a store loads, call it before any request.
    """
    if state.version != ACCOUNT_STATE_VERSION:
        raise InvalidInputError(
            f"the watch state {where} has version {state.version}; "
            f"this sendcloud-async reads version {ACCOUNT_STATE_VERSION}"
        )
    try:
        check_state(state.logs)
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"the watch state {where} holds an unreadable log watch ({exc})"
        ) from None
    return state
