"""Inputs that are cheap to send and expensive to serve, against a real key-less server with small limits
(``limits_server``: one slot, one place in line, short deadlines): each gets its 4xx within seconds,
``/health`` answers in under a second meanwhile, and a good request succeeds after.

Raw sockets where the test must decide exactly what the server has been sent (headers only, a stalled body).
Every server and media host here is on loopback.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from contextlib import contextmanager

import httpx
import pytest

from tests.api.conftest import LIMITS
from tests.api.schemas import validate
from tests.support.loopback import Server
from tests.support.server import metric_values

pytestmark = pytest.mark.engine
BODY_TIMEOUT, IDLE_TIMEOUT, HEADER_TIMEOUT = LIMITS["body"], LIMITS["idle"], LIMITS["header"]
CHAT = "/v1/chat/completions"
MIB = 1024 * 1024


def chat(text="Say hi.", **extra) -> dict:
    return {"model": "auroracap", "max_tokens": 2, "messages": [{"role": "user", "content": text}], **extra}


def assert_good_request_succeeds(base: str) -> None:
    r = httpx.post(base + CHAT, json=chat(), timeout=120)
    assert r.status_code == 200, r.text
    assert metric_values(httpx.get(base + "/metrics").text, "aurora_requests_in_flight") == [0.0]


def assert_error(r: httpx.Response, status: int, code: str, param: str | None = None) -> dict:
    assert r.status_code == status, r.text[:300]
    validate("ErrorResponse", r.json())
    error = r.json()["error"]
    assert error["code"] == code and (param is None or error["param"] == param), error
    return error


@contextmanager
def health_watch(base: str):
    """Polls /health throughout the block; yields the list of its latencies (seconds). An answer other than
    200, or none within 30 s, is recorded as an infinite latency: the caller's bound then fails (an assert in
    the thread would only end the thread)."""
    latencies, stop = [], threading.Event()

    def poll():
        with httpx.Client(base_url=base, timeout=30) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    ok = client.get("/health").status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.monotonic() - started if ok else math.inf)
                time.sleep(0.05)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    time.sleep(0.3)
    try:
        yield latencies
    finally:
        time.sleep(0.3)
        stop.set()
        thread.join(30)


# --- text and JSON that would cost seconds on the event loop --------------------------------------------------


def test_huge_text_is_refused_at_once_and_health_stays_fast(limits_server):
    big = "describe the video in detail " * (9 * MIB // 29)  # 9 MB: seconds to template and tokenize
    cases = [
        (CHAT, chat(big), "messages.0.content", "text_too_long"),
        (CHAT, chat([{"type": "text", "text": "x" * 4000}] * 20), "messages.0.content.16.text", "text_too_long"),
        (CHAT, chat(stop=["a", big[: 2 * MIB]]), "stop", "stop_too_long"),
        ("/v1/captions", {"url": "http://127.0.0.1:9/never-fetched.mp4", "prompt": big}, "prompt", "text_too_long"),
    ]
    with health_watch(limits_server.base) as latencies:
        for path, body, param, code in cases:
            started = time.monotonic()
            r = httpx.post(limits_server.base + path, json=body, timeout=60)
            assert_error(r, 400, code, param)
            assert time.monotonic() - started < 5, (param, time.monotonic() - started)
    assert latencies and max(latencies) < 1.0, max(latencies)
    assert_good_request_succeeds(limits_server.base)


def test_a_body_of_many_tiny_values_is_refused_as_it_arrives(limits_server):
    parts = ",".join(['{"type":"text","text":"x"}'] * 1_000_000)  # 27 MB: ~7 s to parse and validate
    body = ('{"model":"auroracap","messages":[{"role":"user","content":[' + parts + "]}]}").encode()
    with health_watch(limits_server.base) as latencies:
        started = time.monotonic()
        status, _, answer = send_raw(limits_server.port, head("POST", CHAT, len(body)), body)
        assert time.monotonic() - started < 5
    assert status == 400 and json.loads(answer)["error"]["code"] == "too_many_json_items", answer[:300]
    assert max(latencies) < 1.0, max(latencies)
    assert_good_request_succeeds(limits_server.base)


def test_absurd_max_tokens_is_refused_before_any_fetch(limits_server):
    media = Server()
    url = media.url("/small")
    try:
        for body, param in ((chat(max_tokens=10**9), "max_tokens"),
                            (chat(max_completion_tokens=2**62), "max_completion_tokens"),
                            ({**chat(max_tokens=10**9), "messages": [{"role": "user", "content": [
                                {"type": "video_url", "video_url": {"url": url}}]}]}, "max_tokens")):
            r = httpx.post(limits_server.base + CHAT, json=body, timeout=30)
            assert_error(r, 400, "max_tokens_too_large", param)
        r = httpx.post(limits_server.base + "/v1/captions", json={"url": url, "max_tokens": 10**9}, timeout=30)
        assert_error(r, 400, "max_tokens_too_large", "max_tokens")
        assert media.log == []  # refused before the media was fetched
    finally:
        media.shutdown()


# --- slow and large uploads -------------------------------------------------------------------------------------


def head(method: str, path: str, length: int | None = None, host: str = "127.0.0.1", **headers) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json"]
    lines += [f"Content-Length: {length}"] if length is not None else []
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def connect(port: int, data: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(data)
    return sock


def read_answer(sock: socket.socket, timeout: float = 30) -> tuple[int, dict, bytes]:
    """Status, headers and body of the one response on ``sock``; the server closes the connection after it."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    top, _, body = data.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """True when the server closes ``sock`` within ``timeout`` s (anything still unread is skipped: uvicorn's
    own 400 has no Content-Length, its body ends with the connection)."""
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if sock.recv(65536) == b"":
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        pass
    return False


def send_raw(port: int, request_head: bytes, body: bytes) -> tuple[int, dict, bytes]:
    """Send ``body`` from a thread (the server may refuse it half-way) while this thread reads the answer."""
    sock = connect(port, request_head)
    sender = threading.Thread(target=lambda: _send_quietly(sock, body), daemon=True)
    sender.start()
    try:
        return read_answer(sock)
    finally:
        sock.close()
        sender.join(10)


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass  # the server stopped reading: what a refusal does


def gauges(base: str) -> tuple[float, float]:
    text = httpx.get(base + "/metrics").text
    return sum(metric_values(text, "aurora_requests_in_flight")), sum(metric_values(text, "aurora_requests_queued"))


def test_a_stalled_body_is_408_and_frees_its_slot(limits_server):
    sock = connect(limits_server.port, head("POST", CHAT, 1000) + b'{"model": ')
    started = time.monotonic()
    status, headers, body = read_answer(sock)
    waited = time.monotonic() - started
    assert status == 408 and headers["connection"] == "close", body
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    assert IDLE_TIMEOUT - 0.2 < waited < IDLE_TIMEOUT + 2, waited
    assert closed_by_server(sock, 5)
    assert gauges(limits_server.base) == (0, 0)
    assert_good_request_succeeds(limits_server.base)


def test_a_trickled_body_is_408_at_the_whole_body_deadline(limits_server):
    sock = connect(limits_server.port, head("POST", CHAT, 1000))
    stop = threading.Event()

    def trickle():  # a byte every 0.5 s: never idle long enough for the idle timeout
        while not stop.wait(0.5):
            _send_quietly(sock, b" ")

    thread = threading.Thread(target=trickle, daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        status, _, body = read_answer(sock)
    finally:
        stop.set()
        thread.join(5)
    assert status == 408 and f"within {BODY_TIMEOUT:g} s" in json.loads(body)["error"]["message"], body
    assert BODY_TIMEOUT - 0.2 < time.monotonic() - started < BODY_TIMEOUT + 2
    sock.close()
    assert_good_request_succeeds(limits_server.base)


def test_uploads_past_concurrency_and_queue_get_429_unread(limits_server):
    """One slot and one place in line: the third and later uploads are refused on their headers alone."""
    declared = 60 * MIB  # under --max-request-mb's default: nothing refuses it on its size
    holder = connect(limits_server.port, head("POST", "/v1/captions", declared) + b"{")
    stop = threading.Event()
    threading.Thread(target=lambda: [_send_quietly(holder, b" ") for _ in iter(lambda: stop.wait(0.5), True)],
                     daemon=True).start()
    try:
        deadline = time.monotonic() + 10
        while gauges(limits_server.base)[0] != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        waiter = connect(limits_server.port, head("POST", CHAT, declared))
        while gauges(limits_server.base) != (1, 1) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gauges(limits_server.base) == (1, 1)
        for _ in range(4):  # headers only: not one byte of their bodies has been sent
            sock = connect(limits_server.port, head("POST", CHAT, declared))
            started = time.monotonic()
            status, headers, body = read_answer(sock)
            assert status == 429 and headers["retry-after"] == "1" and headers["connection"] == "close", body
            assert json.loads(body)["error"]["type"] == "rate_limit_error"
            assert time.monotonic() - started < 1.0
            assert closed_by_server(sock, 5)  # and it will not read them afterwards either
            sock.close()
    finally:
        stop.set()
    # the holder stalls → 408; the waiter gets the slot, sends nothing → 408: the line moved
    assert read_answer(holder)[0] == 408
    assert read_answer(waiter)[0] == 408
    assert gauges(limits_server.base) == (0, 0)
    assert_good_request_succeeds(limits_server.base)


def test_headers_must_arrive_in_time(limits_server):
    sock = connect(limits_server.port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    started, stop = time.monotonic(), threading.Event()

    def dribble():  # one header byte at a time: any byte used to reset uvicorn's only timer
        for byte in b"X-Slow: " + b"a" * 100:
            if stop.wait(0.3):
                return
            _send_quietly(sock, bytes([byte]))

    threading.Thread(target=dribble, daemon=True).start()
    try:
        assert closed_by_server(sock, HEADER_TIMEOUT + 3)
    finally:
        stop.set()
    assert HEADER_TIMEOUT - 0.2 < time.monotonic() - started < HEADER_TIMEOUT + 2
    sock.close()


def test_oversized_headers_are_refused(limits_server):
    # the block is still incomplete when it passes 16 KiB: h11 refuses it (a complete block read in one go,
    # up to asyncio's 256 KiB read, is parsed whole: see aurora_serve/api/transport.py)
    sock = connect(limits_server.port, b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 17000)
    status, _, _ = read_answer(sock, timeout=10)
    assert status == 400 and closed_by_server(sock, 5)
    sock.close()
