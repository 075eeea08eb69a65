"""Test support: ``FakeSendcloud``, an in-memory Sendcloud Integrations API v3 on loopback.

::

    from sendcloud_async.testing import FakeSendcloud, ScriptedResponse

    async with FakeSendcloud() as fake:
        fake.seed(integrations=2, logs_per_integration=50)
        fake.script("GET", "/integrations/logs", ScriptedResponse(503))
        ...  # point a client at fake.base_url with auth=fake.basic_auth
        assert fake.requests[0].path == "/integrations/logs"
"""

from ._server import FakeSendcloud, RecordedRequest, ScriptedResponse
from ._webhooks import WebhookDelivery

__all__ = ["FakeSendcloud", "RecordedRequest", "ScriptedResponse", "WebhookDelivery"]
