"""The messages of the parts export's storage errors: one line, no secret.

Every message names what was being done and where (the URL without any
credentials), and never holds a secret: the storage library's own message is cut
to its first line and passed through ``clean`` (the credentials read from the
environment, and any signature in a query such as a SAS ``sig=``, are masked) before
it is shown. A storage URL is shown through ``_store.shown_url``. The export's exceptions themselves
(``ExportError``, ``ExportInputError``, ``SecondWriterError``) and the one rule for
a missing optional extra (``require_extra``) are in ``sendcloud_async._errors``.
"""

from __future__ import annotations

import json
import os
import re
from typing import Final

from .._redact import Redactor

__all__ = ["CREDENTIAL_VARIABLES", "clean"]

#: Environment variables whose values are secrets of a storage (masked in every message):
#: every one obstore reads a key, a token, a signature or a password from.
CREDENTIAL_VARIABLES: Final = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_TOKEN",
    "AWS_SSE_CUSTOMER_KEY_BASE64",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "GOOGLE_BEARER_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_MASTER_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_TOKEN",
    "AZURE_STORAGE_CLIENT_SECRET",
    "AZURE_CLIENT_SECRET",
    "AZURE_ENCRYPTION_KEY",
    "AZURE_FABRIC_SESSION_TOKEN",
)

#: A signature in a query, whatever gave it (a SAS ``sig``, a presigned URL's): its value.
_SIGNATURE: Final = re.compile(
    r"(?<![\w-])(?P<name>sig|x-amz-signature|x-amz-security-token|x-goog-signature)="
    r"[^&\s\"'<>]+",
    re.IGNORECASE,
)


def _secrets() -> list[str]:
    """The storage secrets of the environment, with those inside a service account key."""
    secrets = [os.environ.get(name, "") for name in CREDENTIAL_VARIABLES]
    key = os.environ.get("GOOGLE_SERVICE_ACCOUNT_KEY", "")
    if key:
        try:
            fields = json.loads(key)
        except ValueError:
            fields = None
        if isinstance(fields, dict):
            for name in ("private_key", "private_key_id"):
                value = fields.get(name)
                if isinstance(value, str):
                    secrets.append(value)
                    secrets.extend(value.splitlines())
    return [s.strip() for s in secrets if len(s.strip()) >= 4 and not s.startswith("-----")]


def clean(message: object) -> str:
    """``message`` on one line (its first), with every storage credential masked: the
    values of ``CREDENTIAL_VARIABLES`` and any signature in a query (``sig=…``)."""
    text = str(message).strip()
    first = text.splitlines()[0] if text else type(message).__name__
    masked = Redactor(*_secrets()).mask_text(first)
    masked = _SIGNATURE.sub(lambda m: f"{m.group('name')}=**********", masked)
    return " ".join(masked.split())
