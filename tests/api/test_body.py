"""Reading a request body under limits (aurora_serve.api.body), with a scripted ASGI ``receive``: no server."""

from __future__ import annotations

import asyncio
import time

import pytest

from aurora_serve.api.body import BodyLimits, ClientDisconnected, declared_too_large, read_body, replay
from aurora_serve.errors import InvalidRequestError, MediaTooLargeError, RequestTimeoutError

LIMITS = BodyLimits(max_bytes=1000, timeout=0.6, idle_timeout=0.2, max_json_items=10)


def script(*steps):
    """A ``receive`` that plays ``steps``: bytes are chunks (the last one ends the body), numbers are pauses,
    "disconnect" is the client going away."""
    queue = list(steps)

    async def receive():
        while queue and not isinstance(queue[0], bytes):
            pause = queue.pop(0)
            if pause == "disconnect":
                return {"type": "http.disconnect"}
            await asyncio.sleep(pause)
        if not queue:
            await asyncio.sleep(3600)  # a client that sends nothing more
        chunk = queue.pop(0)
        more = any(isinstance(s, bytes) or s == "disconnect" for s in queue)
        return {"type": "http.request", "body": chunk, "more_body": more}

    return receive


def read(*steps, is_json=True, limits=LIMITS):
    return asyncio.run(read_body(script(*steps), limits, is_json=is_json))


def test_chunks_are_joined():
    assert read(b'{"a": ', 0.05, b"1}") == b'{"a": 1}'
    assert read(b"") == b""


def test_a_stalled_body_is_408_after_the_idle_timeout():
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError, match="stalled") as info:
        read(b'{"a": ', 10.0, b"1}")
    assert info.value.status == 408 and 0.15 < time.monotonic() - started < 0.5


def test_a_trickled_body_is_408_at_the_whole_body_deadline():
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError, match="within 0.6 s"):
        read(*[step for _ in range(20) for step in (b"x", 0.1)], b"end")  # never idle for 0.2 s
    assert 0.55 < time.monotonic() - started < 0.9


def test_size_cap_counts_every_chunk():
    with pytest.raises(MediaTooLargeError) as info:
        read(b"x" * 600, b"x" * 600, is_json=False)
    assert info.value.status == 413 and info.value.code == "request_too_large"
    assert declared_too_large({b"content-length": b"1001"}, LIMITS).status == 413
    assert declared_too_large({b"content-length": b"1000"}, LIMITS) is None


def test_json_values_are_counted_as_they_arrive():
    assert read(b"[1,2,3,4,5,", b"6,7,8,9]") == b"[1,2,3,4,5,6,7,8,9]"  # 9 of 10
    with pytest.raises(InvalidRequestError) as info:
        read(b"[" + b"{}," * 6, b"{}," * 6, 10.0)  # refused on the second chunk, not at the end
    assert info.value.status == 400 and info.value.code == "too_many_json_items"
    assert read(b"," * 50, is_json=False) == b"," * 50  # multipart: not JSON


def test_disconnect_and_replay():
    with pytest.raises(ClientDisconnected):
        read(b"x", "disconnect")

    async def replayed():
        again = replay(b"body", script("disconnect"))
        return [await again(), await again()]

    first, then = asyncio.run(replayed())
    assert first == {"type": "http.request", "body": b"body", "more_body": False}
    assert then == {"type": "http.disconnect"}
