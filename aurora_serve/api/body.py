"""Reading a request body under limits: size, a deadline for the whole body, a deadline between chunks, and
for JSON a cap on how many values it can hold.

The count is ``,`` ``[`` ``{`` over the raw bytes as they arrive (text included, so it over-counts; it costs
one ``bytes.count`` per chunk). It exists because parsing is the expensive part of a JSON body made of many
tiny values — 80 MiB of ``{"type":"text","text":"x"}`` parts takes ~20 s of one core to parse and validate,
on the event loop — while a large legitimate body (a base64 ``data:`` URL) is one long string that counts 0.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aurora_serve.errors import InvalidRequestError, MediaTooLargeError, RequestTimeoutError

_STRUCTURE = (b",", b"[", b"{")


@dataclass(frozen=True)
class BodyLimits:
    max_bytes: int
    timeout: float  # seconds for the whole body
    idle_timeout: float  # seconds between two chunks
    max_json_items: int


class ClientDisconnected(Exception):
    """The client went away while sending its body."""


def declared_too_large(headers: dict[bytes, bytes], limits: BodyLimits) -> MediaTooLargeError | None:
    """The 413 for a ``Content-Length`` over the cap (known before any byte is read), else None."""
    declared = headers.get(b"content-length", b"")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        return _too_large(int(declared), limits.max_bytes)
    return None


async def read_body(receive, limits: BodyLimits, *, is_json: bool) -> bytes:
    """The whole body, or raise: 413 (too large), 408 (too slow), 400 (too many JSON values),
    ``ClientDisconnected``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.timeout
    chunks, size, items = [], 0, 0
    while True:
        left = deadline - loop.time()
        try:
            message = await asyncio.wait_for(receive(), max(0.0, min(limits.idle_timeout, left)))
        except asyncio.TimeoutError:  # not the builtin before Python 3.11
            whole = left <= limits.idle_timeout
            raise RequestTimeoutError(
                f"the request body did not arrive within {limits.timeout:g} s" if whole
                else f"the request body stalled: no bytes for {limits.idle_timeout:g} s") from None
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limits.max_bytes:
            raise _too_large(size, limits.max_bytes)
        if is_json:
            items += sum(chunk.count(c) for c in _STRUCTURE)
            if items > limits.max_json_items:
                raise InvalidRequestError(
                    f"the JSON body has over {limits.max_json_items} ',' '[' '{{' characters (values and separators, "
                    "text included); send fewer messages or parts, or less text", code="too_many_json_items")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive):
    """A ``receive`` that returns ``body`` once, then whatever the connection says next (its disconnect)."""
    replayed = False

    async def receive_again():
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again


def _too_large(size: int, limit: int) -> MediaTooLargeError:
    return MediaTooLargeError(f"the request body is {size} bytes or more; this server accepts at most {limit} "
                              "(send large media by URL)", code="request_too_large")
