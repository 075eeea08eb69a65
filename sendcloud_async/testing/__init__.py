"""Test support: ``FakeSendcloud``, an in-memory Sendcloud Integrations API v3 on loopback.

::

    from sendcloud_async.testing import FakeSendcloud, ScriptedResponse

    async with FakeSendcloud() as fake:
        fake.seed(integrations=2, logs_per_integration=50)
        fake.script("GET", "/integrations/logs", ScriptedResponse(503))
        ...  # point a client at fake.base_url with auth=fake.basic_auth
        assert fake.requests[0].path == "/integrations/logs"

Faults (``fake.inject(method, path, Fault.status(503), Fault.drop_after_read())``,
``fake.chaos(seed=1, rates={"status_503": 0.2})``) are described in ``_faults.py``.
``instant_retries()`` makes every client's retries skip their sleep while recording
the waits the policy chose::

    with instant_retries() as retries:
        await client.integrations.list()
    assert [r.reason for r in retries] == ["status 503"]
"""

from .._retry import RetryEvent, instant_retries
from ._faults import Fault, InjectedFault
from ._server import FakeSendcloud, RecordedRequest, ScriptedResponse
from ._webhooks import WebhookDelivery

__all__ = [
    "FakeSendcloud",
    "Fault",
    "InjectedFault",
    "RecordedRequest",
    "RetryEvent",
    "ScriptedResponse",
    "WebhookDelivery",
    "instant_retries",
]
