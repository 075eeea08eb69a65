"""The pytest plugin: ``fake_sendcloud`` under pytest-asyncio (auto and strict) and anyio."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

# A user's test file: the fixture starts a fake, a client talks to it, and the next
# test proves the previous test's fake was closed after it.
USER_TESTS = '''
import aiohttp
import pytest

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud

SEEN: list[str] = []


{mark}
async def test_lists_integrations(fake_sendcloud: FakeSendcloud) -> None:
    """The fixture is running: the SDK lists the seeded integrations."""
    fake_sendcloud.seed(integrations=3)
    SEEN.append(fake_sendcloud.base_url)
    async with sc.SendcloudClient(
        auth=fake_sendcloud.basic_auth, base_url=fake_sendcloud.base_url
    ) as client:
        assert len(await client.integrations.list()) == 3
    assert [r.path for r in fake_sendcloud.requests] == ["/integrations"]


{mark}
async def test_previous_fake_is_closed(fake_sendcloud: FakeSendcloud) -> None:
    """Each test gets its own fake; the previous test's one no longer answers."""
    assert SEEN and SEEN[0] != fake_sendcloud.base_url
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(SEEN[0] + "/integrations")
    assert fake_sendcloud.requests == []
'''

ANYIO_BACKEND = '''
@pytest.fixture
def anyio_backend() -> str:
    """aiohttp needs asyncio."""
    return "asyncio"
'''


def _ini(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makeini(
        f"""
        [pytest]
        asyncio_mode = {mode}
        asyncio_default_fixture_loop_scope = function
        filterwarnings = error
        """
    )


@pytest.mark.parametrize(
    ("mode", "mark"),
    [("auto", ""), ("strict", "@pytest.mark.asyncio")],
    ids=["auto", "strict"],
)
def test_fixture_under_pytest_asyncio(pytester: pytest.Pytester, mode: str, mark: str) -> None:
    """pytest-asyncio runs the fixture in the test's loop, in auto and in strict mode."""
    _ini(pytester, mode)
    pytester.makepyfile(test_user=USER_TESTS.format(mark=mark))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize("order", [[], ["-p", "anyio"]], ids=["entry-points", "anyio-first"])
def test_fixture_under_anyio(pytester: pytest.Pytester, order: list[str]) -> None:
    """anyio runs the fixture of an anyio test, whichever plugin pytest registered first.

    ``-p anyio`` registers anyio's plugin before pytest-asyncio's, so pytest-asyncio's
    fixture hook runs outside anyio's; without the plugin's hand-over the fixture would
    start in another event loop and the test would hang (hence the subprocess timeout).
    """
    _ini(pytester, "strict")
    pytester.makepyfile(test_user=USER_TESTS.format(mark="@pytest.mark.anyio") + ANYIO_BACKEND)
    result = pytester.runpytest_subprocess(*order, "-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=2)


def test_fixture_without_pytest_asyncio_under_anyio(pytester: pytest.Pytester) -> None:
    """With pytest-asyncio disabled, anyio alone is enough."""
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile(test_user=USER_TESTS.format(mark="@pytest.mark.anyio") + ANYIO_BACKEND)
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=2)


def test_marker_passes_options_and_spec_violations_fail_the_test(
    pytester: pytest.Pytester,
) -> None:
    """@pytest.mark.fake_sendcloud(...) reaches FakeSendcloud; validate_spec=True can fail."""
    _ini(pytester, "auto")
    pytester.makepyfile(
        test_user='''
        import base64

        import aiohttp
        import pytest

        from sendcloud_async._transport import USER_AGENT
        from sendcloud_async.testing import FakeSendcloud


        @pytest.mark.fake_sendcloud(public_key="pk-x", secret_key="sk-x")
        async def test_options(fake_sendcloud: FakeSendcloud) -> None:
            """The marker's keyword arguments configure the fake."""
            assert (fake_sendcloud.public_key, fake_sendcloud.secret_key) == ("pk-x", "sk-x")


        @pytest.mark.fake_sendcloud(validate_spec=True)
        async def test_off_spec_request(fake_sendcloud: FakeSendcloud) -> None:
            """A request in the SDK's name that breaks the spec is a violation."""
            basic = base64.b64encode(b"fake-public-key:fake-secret-key").decode()
            headers = {"User-Agent": USER_AGENT, "Authorization": "Basic " + basic}
            async with aiohttp.ClientSession(headers=headers) as session:
                url = fake_sendcloud.base_url + "/integrations/logs?page_size=0"
                async with session.get(url) as r:
                    assert r.status == 400


        @pytest.mark.fake_sendcloud("positional")
        async def test_positional(fake_sendcloud: FakeSendcloud) -> None:
            """Never reached: the marker is refused."""
        '''
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_off_spec_request*",
            "*SpecViolationError*",
            "*ERROR at setup of test_positional*",
            "*TypeError: @pytest.mark.fake_sendcloud(...) takes keyword arguments only*",
        ]
    )


def test_user_fixture_of_the_same_name_wins(pytester: pytest.Pytester) -> None:
    """A project's own ``fake_sendcloud`` fixture overrides the plugin's, untouched."""
    _ini(pytester, "strict")
    pytester.makeconftest(
        '''
        import pytest

        @pytest.fixture
        def fake_sendcloud() -> str:
            """The project's own fixture."""
            return "mine"
        '''
    )
    pytester.makepyfile(
        test_user='''
        def test_mine(fake_sendcloud: str) -> None:
            """The conftest fixture is used."""
            assert fake_sendcloud == "mine"
        '''
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
