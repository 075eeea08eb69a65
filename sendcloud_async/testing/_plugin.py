"""The pytest plugin shipped with the package: the ``fake_sendcloud`` fixture.

pytest loads this module through the ``pytest11`` entry point of the distribution,
so installing ``sendcloud-async`` (best with the ``testing`` extra) is all it takes::

    import sendcloud_async as sc
    from sendcloud_async.testing import FakeSendcloud


    async def test_lists_integrations(fake_sendcloud: FakeSendcloud) -> None:
        fake_sendcloud.seed(integrations=2)
        async with sc.SendcloudClient(
            auth=fake_sendcloud.basic_auth, base_url=fake_sendcloud.base_url
        ) as client:
            assert len(await client.integrations.list()) == 2

The fixture is an async generator: the event loop that runs the test runs the fake.
It works with pytest-asyncio (``asyncio_mode = "auto"``, or strict mode with
``@pytest.mark.asyncio`` on the test) and with anyio (``@pytest.mark.anyio``, asyncio
backend: the fake is an aiohttp server; keep pytest-asyncio, if installed, in its default
strict mode). ``@pytest.mark.fake_sendcloud(**options)``
passes keyword arguments to ``FakeSendcloud(...)``, for example ``validate_spec=True``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
from typing import Any

import pytest

from ._server import FakeSendcloud

MARKER = "fake_sendcloud"


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker that passes options to the fixture's FakeSendcloud."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): keyword arguments for the FakeSendcloud(...) that the "
        "fake_sendcloud fixture starts (for example validate_spec=True)",
    )


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return {}
    if marker.args:
        raise TypeError(f"@pytest.mark.{MARKER}(...) takes keyword arguments only")
    return dict(marker.kwargs)


async def _running_fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeSendcloud]:
    async with FakeSendcloud(**_options(request)) as fake:
        yield fake


async def _fake_sendcloud(request: pytest.FixtureRequest) -> AsyncIterator[FakeSendcloud]:
    """A running FakeSendcloud on 127.0.0.1 for one test, closed after it."""
    async for fake in _running_fake(request):
        yield fake


# The same body, unmarked, for tests that anyio runs (see pytest_fixture_setup).
async def _fake_sendcloud_for_anyio(
    request: pytest.FixtureRequest,
) -> AsyncIterator[FakeSendcloud]:
    async for fake in _running_fake(request):
        yield fake


def _define_fixture() -> Any:
    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover - anyio users need not have it
        return pytest.fixture(_fake_sendcloud, name="fake_sendcloud")
    # pytest-asyncio's own decorator, so that its strict mode runs the fixture too.
    return pytest_asyncio.fixture(_fake_sendcloud, name="fake_sendcloud")


fake_sendcloud = _define_fixture()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, object, object]:
    """Leave ``fake_sendcloud`` to anyio when anyio runs the requesting test.

    A test run by anyio requests ``anyio_backend``; for it the fixture is swapped for
    an unmarked copy, which pytest-asyncio (in its default strict mode) leaves alone
    and anyio runs in the test's event loop.
    """
    if fixturedef.func is not _fake_sendcloud or "anyio_backend" not in request.fixturenames:
        return (yield)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fixturedef, "func", _fake_sendcloud_for_anyio)
        return (yield)
