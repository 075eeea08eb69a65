"""The messages of the parts export's storage errors: one line, no secret.

Every message names what was being done and where (the URL without any
credentials), and never holds a secret: the storage library's own message is cut
to its first line and passed through ``clean`` (the credentials read from the
environment are masked) before it is shown. The export's exceptions themselves
(``ExportError``, ``ExportInputError``, ``SecondWriterError``) and the one rule for
a missing optional extra (``require_extra``) are in ``sendcloud_async._errors``.
"""

from __future__ import annotations

import os
from typing import Final

from .._redact import Redactor

__all__ = ["CREDENTIAL_VARIABLES", "clean"]

#: Environment variables whose values are secrets of a storage (masked in every message).
CREDENTIAL_VARIABLES: Final = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CLIENT_SECRET",
)


def clean(message: object) -> str:
    """``message`` on one line (its first), with every storage credential masked."""
    text = str(message).strip()
    first = text.splitlines()[0] if text else type(message).__name__
    secrets = [os.environ.get(name, "") for name in CREDENTIAL_VARIABLES]
    redactor = Redactor(*[s for s in secrets if len(s) >= 4])
    return " ".join(redactor.mask_text(first).split())
