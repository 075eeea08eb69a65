"""The report's engine without sockets: masks, the top-k sketch, the one pass and its findings."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sendcloud_async._report import LogRow, ReportBuilder
from sendcloud_async._report import _analysis as analysis
from sendcloud_async._report import _stats as stats
from sendcloud_async._report._masks import MAX_LENGTH, Masker, endpoint, message
from sendcloud_async._report._sketch import WIDTHS, TopK, next_width
from sendcloud_async._report._svg import resample, spread

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def row(
    ident: int | None,
    when: datetime | None,
    *,
    exception_type: str | None = None,
    exception: str | None = None,
    response_code: int | None = None,
) -> LogRow:
    return LogRow(
        base_url="https://shop.example.com",
        integration_id=ident,
        created_at=when,
        exception_type=exception_type,
        exception=exception,
        response_code=response_code,
    )


# -- masks -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "404 Client Error: Not Found for url: https://www.shop-7.example.com/api/orders/81236",
            "404 Client Error: Not Found for url: https://<host>/api/orders/<n>",
        ),
        (
            "HTTPSConnectionPool(host='www.x-1.example.com', port=443): Read timed out. "
            "(read timeout=30)",
            "HTTPSConnectionPool(host=<host>, port=<n>): Read timed out. (read timeout=<n>)",
        ),
        (
            "500 Server Error for url: https://x.com/dispatcher.php?url=orders&ws_key=SECRET99#f",
            "500 Server Error for url: https://<host>/dispatcher.php?url=<value>&ws_key=<value>",
        ),
        (
            "Order ORD-2024-000123 for jane.doe@example.com: id "
            "550e8400-e29b-41d4-a716-446655440000 trace deadbeef99",
            "Order ORD-<n>-<n> for <email>: id <uuid> trace <hex>",
        ),
        (
            "Connection to 10.0.0.12:8080 refused after 3.5 s",
            "Connection to <ip>:<n> refused after <n> s",
        ),
        ("tracking 3SABCD1234567 v2 utf8 30ms", "tracking <id> v<n> utf<n> <n>ms"),
        ("API credentials are no longer valid", "API credentials are no longer valid"),
        ("Invalid API key shpat_aBcDeFgHiJkLmNoPqRsTuVwXyZ", "Invalid API key <secret>"),
        ("Token sk_live_AbCdEfGhIjKlMnOp9QrStUv was revoked", "Token <secret> was revoked"),
        ("Shop key aBcDeFgHiJkLmNoPqRsTuVwXyZ refused", "Shop key <id> refused"),
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer <secret>"),
        ("Authorization failed: Basic c2hvcDpwYXNz", "Authorization failed: Basic <secret>"),
        (
            '{"password": "two words", "api_key": "k"}',
            '{"password": "<secret>", "api_key": "<secret>"}',
        ),
        ("client_secret=Abc passwd: x", "client_secret=<secret> passwd: <secret>"),
        ("token expired; secret rotated", "token expired; secret rotated"),
        (
            "'X-Shopify-Access-Token': 'shpatAbCdEfGhIjKlMnOpQrSt'",
            "'X-Shopify-Access-Token': '<secret>'",
        ),
        (
            "ClientConnectorCertificateError HTTPSConnectionPool ECONNREFUSED_ERROR_CODE",
            "ClientConnectorCertificateError HTTPSConnectionPool ECONNREFUSED_ERROR_CODE",
        ),
        (
            "ids 12345678901234567890 deadbeef00deadbeef00 wJalrXUtnFEMIbPxRfiCY",
            "ids <n> <hex> <id>",
        ),
        ("  two\n lines\t here ", "two lines here"),
        ("1234 is not a status", "<n> is not a status"),
        (None, "(no message)"),
        ("   ", "(no message)"),
    ],
)
def test_message_masks_what_differs(text: str | None, masked: str) -> None:
    """Numbers, ids, hosts, addresses and query values are masked; the leading status stays."""
    assert message(text) == masked


def test_a_masked_message_is_cut() -> None:
    """However long the message, its key is at most MAX_LENGTH characters."""
    assert len(message("word " * 10_000)) == MAX_LENGTH
    assert message("word " * 10_000).endswith("…")


@pytest.mark.parametrize(
    ("method", "url", "shown"),
    [
        (
            "get",
            "https://www.x.example.com/api/orders/123?x=1&token=abc",
            "GET /api/orders/<n>?x=<value>&token=<value>",
        ),
        (
            "POST",
            "https://www.x.example.com/rest/V1/shipment/track",
            "POST /rest/V<n>/shipment/track",
        ),
        ("PUT", "https://www.x.example.com", "PUT /"),
        (
            "GET",
            "https://x.example.com/shops/shpat_aBcDeFgHiJkLmNoPqRsTuVwXyZ/orders",
            "GET /shops/<id>/orders",
        ),
        (None, "/orders/12", "/orders/<n>"),
        ("GET", None, ""),
    ],
)
def test_endpoint_is_the_masked_path(method: str | None, url: str | None, shown: str) -> None:
    """An endpoint is METHOD and the masked path, without its host."""
    assert endpoint(method, url) == shown


_TEXT = st.lists(
    st.sampled_from(
        [*"0123456789abcdefXYZ-_.:/?=&@ 'éü", "https://", "host=", "404 ", "token", "Bearer "]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=300)
@given(texts=st.lists(_TEXT, min_size=1, max_size=20))
def test_the_memo_masks_as_message_does(texts: list[str]) -> None:
    """Masker's memo (keyed by the text with its digits as 0) never changes a result."""
    masker = Masker()
    for text in [*texts, *texts, " 404 x 12", "\t503\tdown", "404\n"]:
        assert masker.message(text) == message(text)
        assert masker.endpoint("GET", text) == endpoint("GET", text)


# -- the top-k sketch ----------------------------------------------------------------------------


def test_topk_is_exact_within_its_capacity() -> None:
    """With no more distinct keys than counters, every count is exact and nothing is evicted."""
    sketch = TopK(8)
    stream = [f"k{i % 8}" for i in range(1_000)] + ["k0"] * 5
    for key in stream:
        sketch.add(key)
    assert not sketch.evicted
    assert {key: count for key, count, _ in sketch.top()} == Counter(stream)
    assert sketch.total == len(stream)


@settings(max_examples=200)
@given(
    keys=st.lists(st.integers(0, 40), min_size=1, max_size=600),
    weights=st.lists(st.integers(1, 5), min_size=600, max_size=600),
    capacity=st.integers(1, 12),
)
def test_topk_bounds_hold_past_its_capacity(
    keys: list[int], weights: list[int], capacity: int
) -> None:
    """Space-Saving's guarantees: count - error <= true <= count; heavy keys are kept."""
    sketch = TopK(capacity)
    truth: Counter[str] = Counter()
    for number, weight in zip(keys, weights, strict=False):
        sketch.add(str(number), weight)
        truth[str(number)] += weight
    total = sum(truth.values())
    assert len(sketch) <= capacity
    for key, count, error in sketch.top():
        assert count - error <= truth[key] <= count
    for key, true in truth.items():
        if true > total / capacity:
            assert sketch.count(key) >= true
    assert sketch.evicted == (len(truth) > capacity)


def test_topk_refuses_no_capacity() -> None:
    """A sketch needs at least one counter."""
    with pytest.raises(ValueError, match="capacity"):
        TopK(0)


def test_bucket_widths_divide_each_other() -> None:
    """Each width is a multiple of the one before: merged buckets are unions of whole ones."""
    widths = list(WIDTHS)
    for _ in range(8):
        widths.append(next_width(widths[-1]))
    assert all(b % a == 0 and b > a for a, b in itertools.pairwise(widths))


def test_resample_and_spread_keep_the_total() -> None:
    """A series drawn in fewer cells keeps its logs (spread: in exactly that many cells)."""
    series = list(range(1, 362))
    assert sum(resample(series, 40)) == sum(series)
    assert len(resample(series, 40)) <= 40
    parts = spread(series, 11)
    assert len(parts) == 11
    assert sum(parts) == pytest.approx(sum(series))
    assert spread([3, 3, 3], 3) == [3.0, 3.0, 3.0]


# -- the one pass --------------------------------------------------------------------------------


def test_the_timeline_depends_on_the_span_not_the_order() -> None:
    """Buckets widen with the span (at most MAX_BUCKETS of them); any order, the same counts."""
    rng = random.Random(3)
    rows = [
        row(1 + i % 3, T0 + timedelta(minutes=rng.randrange(60 * 24 * 45))) for i in range(5_000)
    ]
    forward = ReportBuilder(source="a")
    forward.add_many(sorted(rows, key=lambda r: r.created_at or T0))
    backward = ReportBuilder(source="b")
    backward.add_many(sorted(rows, key=lambda r: r.created_at or T0, reverse=True))
    shuffled = ReportBuilder(source="c")
    rng.shuffle(rows)
    for start in range(0, len(rows), 777):
        shuffled.add_many(rows[start : start + 777])
    reports = [b.finish(now=T0) for b in (forward, backward, shuffled)]
    timeline = reports[0].timeline
    assert timeline is not None
    assert timeline.count <= stats.MAX_BUCKETS
    assert timeline.seconds == 3 * 3600 * 2  # 45 days do not fit 400 buckets of 2 hours
    assert timeline.start.timestamp() % timeline.seconds == 0
    for report in reports[1:]:
        assert report.timeline == timeline
        assert report.series == reports[0].series
        assert [i.series for i in report.integrations] == [
            i.series for i in reports[0].integrations
        ]
    assert sum(reports[0].series) == 5_000
    assert sum(reports[0].hour_of_week) == 5_000


def test_counts_exceptions_codes_and_times() -> None:
    """Per integration: logs, first and last seen, top type and code; naive times are UTC."""
    builder = ReportBuilder(source="rows", names={1: "Nordic Coffee"})
    builder.add_many(
        [
            row(1, T0, exception_type="E.Timeout", response_code=None),
            row(1, T0 + timedelta(hours=5), exception_type="E.Timeout", response_code=504),
            row(1, T0 + timedelta(hours=2), exception_type="E.Http", response_code=404),
            row(2, datetime(2024, 3, 1, 1, 0), exception_type=None, response_code=404),  # naive
            row(None, None, exception="no time"),
        ]
    )
    report = builder.finish(now=T0)
    assert report.logs == 5
    assert report.logs_without_time == 1
    first = report.integrations[0]
    assert (first.integration_id, first.name, first.logs) == (1, "Nordic Coffee", 3)
    assert first.first_seen == T0
    assert first.last_seen == T0 + timedelta(hours=5)
    assert [(r.value, r.count) for r in first.exception_types] == [("E.Timeout", 2), ("E.Http", 1)]
    second = next(i for i in report.integrations if i.integration_id == 2)
    assert second.first_seen == datetime(2024, 3, 1, 1, 0, tzinfo=UTC)
    assert [(r.value, r.count) for r in report.response_codes] == [("", 2), ("404", 2), ("504", 1)]
    assert report.first_seen == T0
    assert report.exact


def test_only_one_integration_when_asked() -> None:
    """integration_id= counts that integration's logs and no other."""
    builder = ReportBuilder(source="rows", integration_id=2)
    builder.add_many([row(1, T0), row(2, T0), row(2, T0 + timedelta(minutes=1))])
    report = builder.finish(now=T0)
    assert report.logs == 2
    assert [i.integration_id for i in report.integrations] == [2]


def test_integrations_beyond_the_limit_are_counted_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past MAX_INTEGRATIONS, further integrations are one 'other integrations' row."""
    monkeypatch.setattr(stats, "MAX_INTEGRATIONS", 3)
    builder = ReportBuilder(source="rows")
    builder.add_many([row(i, T0 + timedelta(minutes=i)) for i in range(1, 11)])
    report = builder.finish(now=T0)
    assert report.logs == 10
    rows = [(i.integration_id, i.other, i.logs) for i in report.integrations]
    assert rows[-1] == (None, True, 7)
    assert sorted(r[0] or 0 for r in rows[:-1]) == [1, 2, 3]


def test_memory_is_bounded_by_the_sketches() -> None:
    """Thousands of distinct types and messages keep at most the sketches' counters."""
    builder = ReportBuilder(source="rows")
    builder.add_many(
        row(1, T0 + timedelta(seconds=n), exception_type=f"E{n}", exception=f"kind {n} x" * (n % 3))
        for n in range(20_000)
    )
    assert len(builder._types) == stats.GLOBAL_TOP["exception_types"]
    assert len(builder._tallies[1].types) == stats.INTEGRATION_TOP
    assert len(builder._buckets) <= stats.MAX_BUCKETS
    report = builder.finish(now=T0)
    assert not report.exact
    assert sum(r.count for r in report.exception_types) >= len(report.exception_types)


def test_nothing_to_report() -> None:
    """No logs: an empty report, no timeline, no findings."""
    report = ReportBuilder(source="nothing").finish(now=T0)
    assert (report.logs, report.timeline, report.findings, report.integrations) == (0, None, [], [])


# -- the findings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        (100, 100, "steady"),
        (100, 160, "rising"),
        (160, 100, "falling"),
        (100, 130, "steady"),
        (3, 6, "few"),
        (0, 40, "rising"),
        (40, 0, "falling"),
        (20, 31, "steady"),
    ],
)
def test_direction(first: int, last: int, expected: str) -> None:
    """Rising or falling: by half or more, and more than 3 sigma of two Poisson counts."""
    assert analysis.direction(first, last) == expected


def test_status_needs_a_long_and_unlikely_silence() -> None:
    """A silence is a finding when it is long and, at the integration's rate, unlikely."""
    day = 86_400.0
    period = (0.0, 30 * day)
    assert analysis.status(240, 10 * day, 30 * day, period)[0] == "started"
    assert analysis.status(216, 0.0, 18 * day, period)[0] == "stopped"
    assert analysis.status(100, 10 * day, 20 * day, period)[0] == "episode"
    assert analysis.status(360, 0.5 * day, 29.5 * day, period)[0] == "ongoing"  # short silences
    assert analysis.status(4, 10 * day, 30 * day, period)[0] == "ongoing"  # too few logs
    assert analysis.status(6, 12 * day, 30 * day, period)[0] == "ongoing"  # 3.6 expected: luck


def test_robust_scores() -> None:
    """The modified z-score; the mean absolute deviation stands in for a MAD of 0."""
    scores = analysis.robust_scores([1.0, 2.0, 3.0, 4.0, 100.0])
    assert scores is not None
    assert scores[2] == 0
    assert scores[-1] > 3.5
    same = analysis.robust_scores([5.0, 5.0, 5.0, 5.0, 9.0])
    assert same is not None
    assert same[-1] > 0
    assert analysis.robust_scores([2.0, 2.0, 2.0]) is None
    assert analysis.robust_scores([]) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (30, "30 seconds"),
        (600, "10 minutes"),
        (5 * 3600, "5 hours"),
        (3 * 86_400, "3.0 days"),
        (12 * 86_400, "12 days"),
    ],
)
def test_duration(seconds: float, text: str) -> None:
    """A silence's length as people say it."""
    assert analysis.duration(seconds) == text
