"""The typed usage file is not only type-checked: every line of it works."""

from __future__ import annotations

from pathlib import Path

import sendcloud_async as sc
from sendcloud_async import webhooks
from sendcloud_async.testing import FakeSendcloud
from tests.typecheck import usage


def test_configure_builds_every_kind_of_client() -> None:
    """Credentials, options, rate limits and state construct without a running loop."""
    clients = usage.configure()
    assert all(isinstance(c, sc.SendcloudClient) for c in clients)


async def test_exercise_runs_against_fake_sendcloud(fake: FakeSendcloud) -> None:
    """Every resource call of the usage file succeeds against the fake (spec-validated)."""
    integration = fake.add_integration()
    async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
        await usage.exercise(client, integration["id"])
    assert integration["id"] not in fake.integrations


async def test_receive_handles_signed_and_unsigned_bodies() -> None:
    """The webhook part runs for a valid event, a bad signature and a bad body."""
    body = b'{"action": "integration_deleted", "timestamp": 1525271885993}'
    signed, _ = await usage.receive(body, webhooks.sign(body, "webhook-secret"))
    forged, _ = await usage.receive(body, "0" * 64)
    broken, _ = await usage.receive(b"[]", webhooks.sign(b"[]", "webhook-secret"))
    assert (signed, forged, broken) == ("event", "signature", "body")


async def test_fake_sendcloud_part_runs() -> None:
    """The testing helpers used in the usage file work as shown."""
    await usage.fake_sendcloud()


async def test_watch_export_and_ledger_part_runs(fake: FakeSendcloud, tmp_path: Path) -> None:
    """The watch, the per-integration export and the ledger run as the usage file shows."""
    fake.seed(integrations=2, logs_per_integration=30, seed=3)
    async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
        delivered = await usage.watch_and_dedupe(client, str(tmp_path / "out.jsonl"))
    assert delivered == 60
