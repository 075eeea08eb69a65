"""Exactly-once paging under chaos: a bulk export survives faults by resuming from its cursor.

The export loop is what a long-running job does: page with ``logs.pages()``,
remember each page's ``next_cursor``, and when the SDK finally gives up
(retries exhausted) start again from the last remembered cursor.
"""

from __future__ import annotations

from collections.abc import Mapping

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud, RetryEvent, instant_retries

CHAOS: Mapping[str, float] = {
    "status_429": 0.04,
    "status_500": 0.03,
    "status_502": 0.03,
    "status_503": 0.04,
    "status_504": 0.02,
    "drop_before_read": 0.03,
    "drop_after_read": 0.03,
    "truncated_body": 0.03,
    "delay": 0.02,  # longer than the client's timeout: a timeout
}
GIVE_UPS: tuple[type[sc.SendcloudError], ...] = (
    sc.APIConnectionError,
    sc.ServerError,
    sc.RateLimitError,
)


async def export(
    client: sc.SendcloudClient,
    page_size: int,
    give_ups: tuple[type[sc.SendcloudError], ...] = GIVE_UPS,
) -> tuple[list[int | None], int]:
    """Every log id in order, resuming after the last complete page; and how often it resumed."""
    ids: list[int | None] = []
    cursor: str | None = None
    resumed = 0
    while True:
        try:
            async for page in client.logs.pages(page_size=page_size, cursor=cursor):
                ids.extend(log.id for log in page.items)
                if page.next_cursor is not None:
                    cursor = page.next_cursor
            return ids, resumed
        except give_ups:
            resumed += 1


def failure_share(fake: FakeSendcloud) -> float:
    """Faulted requests over all requests the fake received."""
    return sum(fake.fault_counts.values()) / len(fake.requests)


async def test_export_20000_logs_exactly_once_under_chaos(fake: FakeSendcloud) -> None:
    """20,000 logs through ≥ 20 % failing requests: every id once, in order, after resumes."""
    fake.seed(integrations=4, logs_per_integration=5000, seed=11)
    expected = [log["id"] for log in fake.logs]
    fake.chaos(seed=2024, rates=CHAOS, delay=0.5, retry_after=0)
    retries: list[RetryEvent]
    with instant_retries() as retries:
        async with sc.SendcloudClient(
            auth=fake.basic_auth, base_url=fake.base_url, timeout=0.25, max_retries=1
        ) as client:
            ids, resumed = await export(client, page_size=100)
    assert len(ids) == 20_000
    assert ids == expected  # in order, and so each exactly once
    assert len(set(ids)) == len(ids)
    assert failure_share(fake) >= 0.2
    assert resumed >= 3  # the SDK gave up several times and the job resumed
    assert len(retries) > 30
    assert set(fake.fault_counts) == set(CHAOS)


async def test_export_with_oauth2_under_chaos_and_token_revocation(fake: FakeSendcloud) -> None:
    """With OAuth2, revoked tokens are replaced on the way and the export stays exactly-once."""
    fake.seed(integrations=2, logs_per_integration=2500, seed=12)
    expected = [log["id"] for log in fake.logs]
    fake.chaos(seed=7, rates={**CHAOS, "revoke_token": 0.05}, delay=0.5, retry_after=0)
    with instant_retries():
        async with sc.SendcloudClient(
            auth=fake.oauth2_credentials, base_url=fake.base_url, timeout=0.25, max_retries=2
        ) as client:
            # A token revoked again right after its refresh outlasts the one replay a 401
            # gets (AuthenticationError): the job resumes as for any other give-up.
            ids, _ = await export(client, 50, (*GIVE_UPS, sc.AuthenticationError))
    assert ids == expected
    assert fake.fault_counts["revoke_token"] >= 5
    assert len(fake.issued_tokens) == fake.fault_counts["revoke_token"] + 1
    assert failure_share(fake) >= 0.2
