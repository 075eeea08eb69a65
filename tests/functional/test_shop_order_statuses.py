"""client.shop_order_statuses against FakeSendcloud over real sockets."""

from __future__ import annotations

from typing import Any

import pytest

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud

STATUSES: list[sc.ShopOrderStatusInput | dict[str, Any]] = [
    sc.ShopOrderStatusInput(
        "17-B",
        [sc.StatusTranslation("Delivered", "en-gb"), sc.StatusTranslation("Bezorgd", "nl-nl")],
    ),
    {"external_id": "14-A", "translations": [{"status": "Cancelled", "language": "en-gb"}]},
]


async def test_replace_then_list(fake: FakeSendcloud, client: sc.SendcloudClient) -> None:
    """replace() posts the complete set (Structs and dicts) and list() reads it back."""
    iid = fake.add_integration()["id"]
    assert await client.shop_order_statuses.replace(iid, STATUSES) is None  # type: ignore[func-returns-value]
    assert fake.requests[-1].json == {
        "integration_id": iid,
        "statuses": [
            {
                "external_id": "17-B",
                "translations": [
                    {"status": "Delivered", "language": "en-gb"},
                    {"status": "Bezorgd", "language": "nl-nl"},
                ],
            },
            {"external_id": "14-A", "translations": [{"status": "Cancelled", "language": "en-gb"}]},
        ],
    }
    statuses = await client.shop_order_statuses.list(iid, language="nl-nl")
    by_id = {s.external_id: s for s in statuses}
    assert by_id["17-B"].status == "Bezorgd"
    assert by_id["14-A"].status == "Cancelled"  # falls back to en-gb
    assert all(isinstance(s, sc.ShopOrderStatus) for s in statuses)
    assert fake.requests[-1].query == {"integration_id": str(iid), "language": "nl-nl"}


async def test_replace_deletes_unlisted_and_show_deleted(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """Statuses left out of replace() are deleted; show_deleted=True still lists them."""
    iid = fake.add_integration()["id"]
    await client.shop_order_statuses.replace(iid, STATUSES)
    await client.shop_order_statuses.replace(iid, STATUSES[:1])
    current = await client.shop_order_statuses.list(iid)
    assert [s.external_id for s in current] == ["17-B"]
    everything = await client.shop_order_statuses.list(iid, show_deleted=True)
    deleted = {s.external_id: s.deleted_at for s in everything}
    assert deleted["17-B"] is None
    assert deleted["14-A"] is not None
    assert deleted["14-A"].tzinfo is not None
    assert fake.requests[-1].query["show_deleted"] == "true"


async def test_replace_empty_needs_allow_empty(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """replace(id, []) refuses without allow_empty=True and sends nothing; with it, it clears."""
    iid = fake.add_integration()["id"]
    with pytest.raises(sc.InvalidInputError, match="allow_empty"):
        await client.shop_order_statuses.replace(iid, [])
    assert fake.requests == []
    await client.shop_order_statuses.replace(iid, [], allow_empty=True)
    assert fake.requests[-1].json == {"integration_id": iid, "statuses": []}


@pytest.mark.parametrize(
    ("statuses", "message"),
    [
        ([STATUSES[0], STATUSES[0]], "duplicate external_id"),
        (
            [
                {
                    "external_id": "1",
                    "translations": [
                        {"status": "a", "language": "en-gb"},
                        {"status": "b", "language": "en-gb"},
                    ],
                }
            ],
            "appears twice",
        ),
        (
            [{"external_id": "1", "translations": [{"status": "a", "language": "xx-yy"}]}],
            "language",
        ),
        ([{"external_id": "1", "translations": []}], "1 to 7"),
        (
            [{"external_id": "", "translations": [{"status": "a", "language": "en-gb"}]}],
            "external_id",
        ),
        ([{"external_id": "1"}], "translations"),
        ([5], "ShopOrderStatusInput or a dict"),
        ("17-B", "must be a list"),
    ],
)
async def test_replace_bad_input_sends_nothing(
    fake: FakeSendcloud, client: sc.SendcloudClient, statuses: object, message: str
) -> None:
    """Every malformed statuses argument raises InvalidInputError before sending."""
    with pytest.raises(sc.InvalidInputError, match=message):
        await client.shop_order_statuses.replace(1, statuses)  # type: ignore[arg-type]
    assert fake.requests == []


async def test_list_bad_input_sends_nothing(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """An unknown language or a non-bool show_deleted is refused before sending."""
    with pytest.raises(sc.InvalidInputError, match="language"):
        await client.shop_order_statuses.list(1, language="en")
    with pytest.raises(sc.InvalidInputError, match="show_deleted"):
        await client.shop_order_statuses.list(1, show_deleted="yes")  # type: ignore[arg-type]
    assert fake.requests == []


async def test_mapping_round_trip(fake: FakeSendcloud, client: sc.SendcloudClient) -> None:
    """set_mapping() with a dict sends all four categories; get_mapping() reads them back."""
    iid = fake.add_integration()["id"]
    await client.shop_order_statuses.replace(iid, STATUSES)
    mapping = {"CANCEL": None, "READY_TO_SEND": "17-B", "IN_TRANSIT": "17-B", "DELIVERED": "14-A"}
    assert await client.shop_order_statuses.set_mapping(iid, mapping) is None  # type: ignore[func-returns-value]
    assert fake.requests[-1].json == {
        "integration_id": iid,
        "mapping": [
            {"status_category": "READY_TO_SEND", "external_id": "17-B"},
            {"status_category": "IN_TRANSIT", "external_id": "17-B"},
            {"status_category": "DELIVERED", "external_id": "14-A"},
            {"status_category": "CANCEL", "external_id": None},
        ],
    }
    got = await client.shop_order_statuses.get_mapping(iid)
    assert isinstance(got, sc.StatusMapping)
    assert got.integration_id == iid
    assert {(e.status_category, e.external_id) for e in got.mapping} == set(mapping.items())
    assert all(e.is_valid for e in got.mapping if e.external_id)


async def test_set_mapping_with_entries(fake: FakeSendcloud, client: sc.SendcloudClient) -> None:
    """set_mapping() also takes a list of StatusMappingEntry."""
    iid = fake.add_integration()["id"]
    entries = [
        sc.StatusMappingEntry(c, None)
        for c in ("DELIVERED", "CANCEL", "IN_TRANSIT", "READY_TO_SEND")
    ]
    await client.shop_order_statuses.set_mapping(iid, entries)
    got = await client.shop_order_statuses.get_mapping(iid)
    assert [e.external_id for e in got.mapping] == [None] * 4


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"READY_TO_SEND": "1"}, "missing IN_TRANSIT, DELIVERED, CANCEL"),
        (
            {
                "READY_TO_SEND": "1",
                "IN_TRANSIT": "1",
                "DELIVERED": "1",
                "CANCEL": None,
                "RETURNED": "1",
            },
            "status category must be one of",
        ),
        ([sc.StatusMappingEntry("CANCEL", None)] * 2, "more than once"),
        (
            {"READY_TO_SEND": 1, "IN_TRANSIT": "1", "DELIVERED": "1", "CANCEL": None},
            "must be a str",
        ),
        (["READY_TO_SEND"], "StatusMappingEntry"),
        ("READY_TO_SEND", "must be a dict"),
    ],
)
async def test_set_mapping_bad_input_sends_nothing(
    fake: FakeSendcloud, client: sc.SendcloudClient, mapping: object, message: str
) -> None:
    """A mapping without exactly one entry per known category is refused before sending."""
    with pytest.raises(sc.InvalidInputError, match=message):
        await client.shop_order_statuses.set_mapping(1, mapping)  # type: ignore[arg-type]
    assert fake.requests == []


async def test_statuses_of_unknown_integration(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """The server's 404 for an unknown integration becomes NotFoundError."""
    with pytest.raises(sc.NotFoundError):
        await client.shop_order_statuses.list(31337)
