"""Test support: ``FakeSendcloud``, an in-memory Sendcloud Integrations API v3 on loopback.

::

    from sendcloud_async.testing import FakeSendcloud, ScriptedResponse

    async with FakeSendcloud() as fake:
        fake.seed(integrations=2, logs_per_integration=50)
        fake.script("GET", "/integrations/logs", ScriptedResponse(503))
        ...  # point a client at fake.base_url with auth=fake.basic_auth
        assert fake.requests[0].path == "/integrations/logs"

``fake.produce(rate=20)`` keeps adding logs (20 a second) until the ``LogProducer``
it returns is stopped (see ``_produce.py``). Faults (``fake.inject(method, path,
Fault.status(503), Fault.drop_after_read())``, ``fake.chaos(seed=1,
rates={"status_503": 0.2})``) are described in ``_faults.py``.
``instant_retries()`` makes every client's retries skip their sleep while recording
the waits the policy chose::

    with instant_retries() as retries:
        await client.integrations.list()
    assert [r.reason for r in retries] == ["status 503"]

``FailurePatterns`` makes logs with known failure patterns (an integration failing
from a given day, one recovering, one exception type dominating; see
``_scenarios.py``) for testing what ``logs report`` finds.
"""

from .._retry import RetryEvent, instant_retries
from ._faults import Fault, InjectedFault
from ._produce import LogProducer
from ._scenarios import FailurePatterns
from ._server import FakeSendcloud, RecordedRequest, ScriptedResponse
from ._webhooks import WebhookDelivery

__all__ = [
    "FailurePatterns",
    "FakeSendcloud",
    "Fault",
    "InjectedFault",
    "LogProducer",
    "RecordedRequest",
    "RetryEvent",
    "ScriptedResponse",
    "WebhookDelivery",
    "instant_retries",
]
