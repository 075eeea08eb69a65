"""Rendezvous hashing of the Redis watch: who owns which account, and what moves."""

from __future__ import annotations

from collections import Counter

import pytest

from sendcloud_async._redis._watch import owners, ranking, weight
from sendcloud_async._redis._watch._members import Membership
from sendcloud_async._retry import RetryPolicy, capped_backoff

ACCOUNTS = [f"acct-{n:03d}" for n in range(200)]
WORKERS = [f"host-{n}:{1000 + n}:{n:08x}" for n in range(1, 5)]


def test_the_weight_is_the_same_in_every_process_and_differs_per_pair() -> None:
    """A 64-bit hash of the pair (not Python's salted ``hash``): fixed values."""
    assert weight("acct-000", "w1") == weight("acct-000", "w1")
    assert 0 <= weight("acct-000", "w1") < 2**64
    assert weight("acct-000", "w1") != weight("acct-000", "w2")
    assert weight("acct-000", "w1") != weight("acct-001", "w1")
    assert weight("acct-000", "w1") == 0xE5498A1044938652


def test_200_accounts_spread_evenly_over_4_workers() -> None:
    """Every account has one owner; over many sets of 4 workers each owns 50 on average, as
    evenly as independent fair draws (binomial: standard deviation 6.1) and never far off."""
    counts = Counter(owners(ACCOUNTS, WORKERS).values())
    assert set(counts) == set(WORKERS)
    assert sum(counts.values()) == 200
    shares: list[int] = []
    for trial in range(100):
        workers = [f"host-{trial}:{n}:{trial * 7 + n:08x}" for n in range(4)]
        shares += Counter(owners(ACCOUNTS, workers).values()).values()
    mean = sum(shares) / len(shares)
    deviation = (sum((n - mean) ** 2 for n in shares) / len(shares)) ** 0.5
    assert mean == 50
    assert 4.5 <= deviation <= 7.5, deviation
    assert all(30 <= n <= 70 for n in shares), sorted(shares)


def test_a_fifth_worker_takes_accounts_only_for_itself() -> None:
    """Adding a worker moves accounts only to it, about a fifth of them."""
    before = owners(ACCOUNTS, WORKERS)
    new = "host-5:1005:00000005"
    after = owners(ACCOUNTS, [*WORKERS, new])
    moved = {a for a in ACCOUNTS if before[a] != after[a]}
    assert moved
    assert all(after[a] == new for a in moved)
    assert moved == {a for a in ACCOUNTS if after[a] == new}
    assert 30 <= len(moved) <= 50, len(moved)


@pytest.mark.parametrize("leaving", WORKERS)
def test_a_worker_leaving_moves_only_its_own_accounts(leaving: str) -> None:
    """Removing a worker moves exactly its accounts, each to its next-ranked worker."""
    before = owners(ACCOUNTS, WORKERS)
    rest = [w for w in WORKERS if w != leaving]
    after = owners(ACCOUNTS, rest)
    moved = {a for a in ACCOUNTS if before[a] != after[a]}
    assert moved == {a for a in ACCOUNTS if before[a] == leaving}
    for account in moved:
        assert after[account] == ranking(account, WORKERS)[1]


def test_ranking_orders_by_weight_and_no_workers_means_no_owner() -> None:
    ranked = ranking("acct-007", WORKERS)
    assert sorted(ranked) == sorted(WORKERS)
    weights = [weight("acct-007", w) for w in ranked]
    assert weights == sorted(weights, reverse=True)
    assert owners(ACCOUNTS, []) == {}


def test_membership_reports_the_accounts_whose_owner_changed() -> None:
    """A worker's view: joins and leaves report the moved accounts; no change, none."""
    me = WORKERS[0]
    view = Membership(me, ACCOUNTS)
    assert view.share() == 200
    assert view.mine("acct-000")
    assert view.rank("acct-000") == 0
    assert view.update([]) == set(ACCOUNTS)  # alone: it owns everything
    assert view.update([me]) == set()
    moved = view.update(WORKERS)
    expected = owners(ACCOUNTS, WORKERS)
    assert moved == {a for a in ACCOUNTS if expected[a] != me}
    assert view.share() == sum(1 for o in expected.values() if o == me)
    for account in ACCOUNTS[:20]:
        assert view.mine(account) == (expected[account] == me)
        assert view.rank(account) == ranking(account, WORKERS).index(me)
    assert view.update(WORKERS) == set()
    back = view.update([me, WORKERS[1]])  # two leave: their accounts move, nothing else
    assert back == {a for a in ACCOUNTS if expected[a] in WORKERS[2:]}


def test_one_backoff_curve_for_retries_and_failing_watches() -> None:
    """``capped_backoff``: base, doubling, capped; the retry policy's ceiling is it too."""
    assert [capped_backoff(n, 0.5, 8.0) for n in range(1, 7)] == [0.5, 1, 2, 4, 8, 8]
    assert capped_backoff(10_000, 1.0, 60.0) == 60.0  # no overflow on a long failing run
    policy = RetryPolicy(backoff_base=0.5, backoff_max=8.0)
    for n in range(1, 8):
        assert capped_backoff(n, 0.5, 8.0) / 2 <= policy.backoff(n) <= capped_backoff(n, 0.5, 8.0)
