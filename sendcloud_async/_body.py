"""The one rule for reading a response body: never more than ``max_response_size`` bytes.

The limit counts *decompressed* bytes, so a gzip bomb is stopped as soon as it
inflates past it, and memory stays bounded by the limit (aiohttp inflates in
bounded steps). Most pages carry a ``Content-Length`` and no ``Content-Encoding``:
those are checked against the header and read in one call, as fast as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import aiohttp

from ._defaults import DEFAULT_MAX_RESPONSE_SIZE
from ._errors import ResponseTooLargeError

__all__ = ["DEFAULT_MAX_RESPONSE_SIZE", "BodyLimit"]

_CHUNK: Final = 256 * 1024


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """Reads a whole response body, refusing one over ``max_bytes``."""

    max_bytes: int = DEFAULT_MAX_RESPONSE_SIZE

    def at_once(self, resp: aiohttp.ClientResponse) -> bool:
        """Whether ``resp``'s body may be read in one call (``resp.read()``): it says
        its length, within the limit, and arrives as it is. Else ``read`` it."""
        length = resp.content_length
        return length is not None and length <= self.max_bytes and hdrs_plain(resp)

    async def read(self, resp: aiohttp.ClientResponse, *, method: str, url: str) -> bytes:
        """The body of ``resp``; ``ResponseTooLargeError`` once it passes the limit."""
        if self.at_once(resp):
            return await resp.read()
        limit = self.max_bytes
        if resp.content_length is not None and hdrs_plain(resp):  # said to be too large
            raise ResponseTooLargeError(limit, method=method, url=url, status=resp.status)
        chunks: list[bytes] = []
        total = 0
        async for chunk in resp.content.iter_chunked(_CHUNK):
            total += len(chunk)
            if total > limit:
                raise ResponseTooLargeError(limit, method=method, url=url, status=resp.status)
            chunks.append(chunk)
        return b"".join(chunks)


def hdrs_plain(resp: aiohttp.ClientResponse) -> bool:
    """Whether the body arrives as it is (no ``Content-Encoding`` other than identity)."""
    encoding = resp.headers.get("Content-Encoding")
    return encoding is None or encoding.strip().lower() in ("", "identity")
