"""One contract for every source: the account-wide export, the per-integration walks, the watch.

Each source runs once over a seeded ``FakeSendcloud`` (three integrations, pages of
three logs, logs that share a ``created_at`` across page boundaries; for the watch
also logs that arrive between polls and one committed late), recording every step:
its records and the state after them. Then, with a fresh client each time:

* resuming from every recorded state, each one, yields exactly the rest of the run:
  no record twice, none missing, in the source's order;
* the initial state yields every log, each once, in the source's order;
* the state from the end yields nothing new;
* a damaged state, or one of an unknown version, is refused with the SDK's one-line
  error before any request is sent, and nothing the state accounts for is changed.

The adapters (``_sources.py``) say which seam each source's state comes from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from sendcloud_async.testing import FakeSendcloud

from ._sources import SOURCES, Record, Run, Source, World, straddles

# One world and one full run per source, shared by its tests (no test changes the
# fake's logs; every resume writes to paths of its own): one event loop for them all.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module", params=SOURCES, ids=repr)
def source(request: pytest.FixtureRequest) -> Source:
    assert isinstance(request.param, Source)
    return request.param


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(source: Source, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """The seeded fake, in the listing order ``source`` is run over."""
    async with FakeSendcloud(log_order=source.log_order, unique_log_times=False) as fake:
        world = World(fake, tmp_path_factory.mktemp(source.name))
        world.seed()
        for listing in source.listings:  # the data is what the battery says it is
            assert straddles(world.stamps(listing)) >= 1, (
                f"no tie across a page boundary of the {listing or 'account'} listing"
            )
        yield world
        assert fake.spec_violations == [], "traffic that breaks the OpenAPI spec"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def run(source: Source, world: World) -> Run:
    """The source's full run, every step recorded (once)."""
    run = await source.run(world)
    assert len(run.steps) >= 2, "too few steps for the resumes to tell anything"
    return run


def twice(records: list[Record]) -> list[Record]:
    return sorted(record for record, n in Counter(records).items() if n > 1)


async def test_resuming_from_every_recorded_state_yields_exactly_the_rest(
    source: Source, world: World, run: Run
) -> None:
    for k, state in enumerate(run.states):
        rest = run.after(k)
        got = await source.resume(world, state)
        where = f"resumed from state {k} of {len(run.steps)}"
        assert twice(got) == [], f"{where}: delivered twice"
        assert sorted(set(rest) - set(got)) == [], f"{where}: missing"
        assert sorted(set(got) - set(rest)) == [], f"{where}: delivered again (or never in the run)"
        assert source.project(got, run) == source.project(rest, run), (
            f"{where}: not in the source's order"
        )


async def test_the_initial_state_yields_every_log_once_in_order(
    source: Source, world: World, run: Run
) -> None:
    got = await source.resume(world, run.initial)
    every = world.listing()
    assert twice(got) == []
    assert sorted(set(got) - set(every)) == []
    listed = set(got)
    assert source.project(got, run) == source.project([r for r in every if r in listed], run)
    assert sorted(run.records) == sorted(got), "the full run and a fresh start differ"
    assert sorted(set(every) - listed) == [], "missing from a start at the initial state"


async def test_a_state_from_the_end_yields_nothing_new(
    source: Source, world: World, run: Run
) -> None:
    assert await source.resume(world, run.steps[-1].state) == []


@pytest.mark.parametrize("kind", ["damaged", "unknown-version"])
async def test_a_damaged_or_unknown_state_is_refused_before_any_request(
    source: Source, world: World, run: Run, kind: str
) -> None:
    for state in (run.steps[0].state, run.steps[len(run.steps) // 2].state):
        bad = source.damage(state, kind)
        world.fake.clear_requests()
        with pytest.raises(source.refused, match=source.messages[kind]) as refused:
            await source.resume(world, bad)
        assert "\n" not in str(refused.value)
        assert world.fake.requests == [], "a request was sent from a refused state"
