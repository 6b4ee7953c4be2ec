"""A client that drops a request frees its engine request: SGLang's running count returns to zero.

Observed through production metrics only (``--enable-sglang-metrics``): ``sglang:num_running_reqs`` (the
scheduler's gauge), ``sglang:num_aborted_requests_total`` and ``aurora_requests_in_flight``. The client is a
raw socket, so the test decides exactly when the connection goes away.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.api.conftest import API_KEY
from tests.support.server import metric_values

pytestmark = pytest.mark.engine
LONG = {"model": "auroracap", "max_tokens": 3000, "ignore_eos": True,
        "messages": [{"role": "user", "content": "Describe a long video."}]}


def gauges(http) -> dict[str, float]:
    text = http.get("/metrics").text
    pick = lambda name: sum(metric_values(text, name))  # noqa: E731
    return {"running": pick("sglang:num_running_reqs"), "in_flight": pick("aurora_requests_in_flight"),
            "aborted": pick("sglang:num_aborted_requests_total")}


def wait_for(http, predicate, timeout: float = 20.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        now = gauges(http)
        if predicate(now) or time.monotonic() > deadline:
            return now
        time.sleep(0.2)


def send_raw(port: int, body: dict) -> socket.socket:
    payload = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 + f"Authorization: Bearer {API_KEY}\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload)
    return sock


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "non-stream"])
def test_dropped_request_is_aborted_in_the_engine(http, server, stream):
    before = wait_for(http, lambda g: g["running"] == 0 and g["in_flight"] == 0)  # earlier tests' work is done
    assert before["running"] == 0 and before["in_flight"] == 0, before
    sock = send_raw(server.port, {**LONG, "stream": stream})
    try:
        if stream:
            received = b""
            while received.count(b"data: ") < 10:  # the stream is under way
                received += sock.recv(65536)
            assert received.startswith(b"HTTP/1.1 200")
        during = wait_for(http, lambda g: g["running"] == 1 and g["in_flight"] == 1)
        assert during["running"] == 1 and during["in_flight"] == 1, during
    finally:
        sock.close()  # the client goes away mid-generation (3000 tokens take far longer than this test)
    after = wait_for(http, lambda g: g["running"] == 0 and g["in_flight"] == 0)
    assert after["running"] == 0 and after["in_flight"] == 0, after
    assert after["aborted"] >= before["aborted"] + 1
    r = http.post("/v1/chat/completions", json={**LONG, "max_tokens": 4, "ignore_eos": False})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] <= 4
