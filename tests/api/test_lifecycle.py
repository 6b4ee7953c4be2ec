"""A second server with other flags: media hosts allowed on loopback, one request at a time (no line), a drain.

Runs in file order; the last test sends SIGTERM and checks the graceful shutdown.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from tests.support.server import ServerProcess, metric_values
from tests.api.schemas import validate

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def server2(tmp_path_factory):
    log = tmp_path_factory.mktemp("logs") / "server2.log"
    args = ["--allow-media-hosts", "127.0.0.1/32", "--max-concurrency", "1", "--max-queue", "0",
            "--drain-timeout", "60", "--default-num-frames", "2", "--media-max-redirects", "3"]
    with ServerProcess(args, log) as proc:
        yield proc


def video_body(url: str, **extra) -> dict:
    return {"model": "auroracap", "max_tokens": 2, "messages": [{"role": "user", "content": [
        {"type": "video_url", "video_url": {"url": url}}, {"type": "text", "text": "Describe."}]}], **extra}


def test_allowed_media_host_is_fetched(server2, media_host):
    media_host.hits.clear()
    r = httpx.post(server2.base + "/v1/chat/completions", json=video_body(media_host.base + "/clip.mp4"), timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["visual_tokens"] > 0
    assert media_host.hits == ["/clip.mp4"]


@pytest.mark.parametrize("path, hits", [("/loop-a", 2), ("/missing.mp4", 1)])
def test_redirect_loop_and_http_errors_are_4xx(server2, media_host, path, hits):
    media_host.hits.clear()
    r = httpx.post(server2.base + "/v1/chat/completions", json=video_body(media_host.base + path), timeout=60)
    assert r.status_code == 400, r.text
    validate("ErrorResponse", r.json())
    assert len(media_host.hits) == hits


def test_concurrency_limit_and_graceful_drain(server2):
    base = server2.base
    long = {"model": "auroracap", "max_tokens": 600, "ignore_eos": True, "stream": True,
            "messages": [{"role": "user", "content": "Describe a long video."}]}
    started, result = threading.Event(), {}

    def stream():
        with httpx.stream("POST", base + "/v1/chat/completions", json=long, timeout=120) as r:
            lines = []
            for line in r.iter_lines():
                if line.startswith("data: "):
                    lines.append(line[6:])
                    started.set()
        result.update(lines=lines)

    worker = threading.Thread(target=stream)
    worker.start()
    assert started.wait(120)
    # one request at a time: the second gets 429 with Retry-After, in OpenAI's envelope
    r = httpx.post(base + "/v1/chat/completions", json={**long, "stream": False, "max_tokens": 1})
    assert r.status_code == 429 and r.headers["retry-after"] == "1", r.text
    validate("ErrorResponse", r.json())
    assert metric_values(httpx.get(base + "/metrics").text, "aurora_requests_in_flight") == [1.0]

    # SIGTERM: not ready, new requests 503, the stream in flight runs to its end, exit status 0
    server2.proc.send_signal(15)
    deadline = time.monotonic() + 10
    while httpx.get(base + "/ready").status_code != 503 and time.monotonic() < deadline:
        time.sleep(0.05)
    r = httpx.get(base + "/ready")
    assert r.status_code == 503 and r.json()["error"]["code"] == "draining"
    # the gauge, not the clocks, says the stream was still in flight while the server drained
    assert metric_values(httpx.get(base + "/metrics").text, "aurora_requests_in_flight") == [1.0]
    r = httpx.post(base + "/v1/chat/completions", json={**long, "stream": False, "max_tokens": 1})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    validate("ErrorResponse", r.json())
    worker.join(120)
    lines = result["lines"]
    assert lines[-1] == "[DONE]"
    finals = [json.loads(x) for x in lines[:-1] if json.loads(x)["choices"][0]["finish_reason"]]
    assert finals and finals[-1]["choices"][0]["finish_reason"] == "length"
    assert server2.proc.wait(60) == 0
