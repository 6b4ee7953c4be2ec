"""Hostile media against a real server with default budgets (loopback only): each file gets its 4xx quickly,
`/health` keeps answering while it is processed, the server's memory stays bounded, a good request succeeds
afterwards; and dropped expensive requests free their slot and their decoder at once."""

from __future__ import annotations

import threading
import time

import httpx
import psutil
import pytest

from benchmarks import hostile
from benchmarks.soak import tree_rss
from tests.api.schemas import validate
from tests.support.clips import data_url, make_video
from tests.support.server import ServerProcess, metric_values

pytestmark = pytest.mark.engine
# Resident memory the server may grow by over the whole corpus (it grew by 3.1 GB for the 4K clip alone when
# every sampled frame was held at full size): four decode threads × one 4K frame + FFmpeg's reference frames
# + the crops and the tokenizer's work, with room for allocator slack.
RSS_GROWTH_BOUND = 600 * 2**20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # Defaults everywhere (the budgets under test) but one request at a time, for the abandonment test.
    with ServerProcess(["--max-concurrency", "1", "--max-media-mb", "8", "--default-max-tokens", "2"],
                        tmp_path_factory.mktemp("hostile") / "server.log") as proc:
        yield proc


def body(h: hostile.Hostile) -> dict:
    mime = "image/png" if h.part == "image_url" else "video/mp4"
    part = {"type": h.part, h.part: {"url": data_url(h.data, mime)}}
    return {"model": "auroracap", "max_tokens": 2, **h.options,
            "messages": [{"role": "user", "content": [part, {"type": "text", "text": "Describe."}]}]}


def good_request(base: str, seed: int) -> httpx.Response:
    """A small video no earlier request sent (a new ``seed``), so it is decoded, not answered from the cache."""
    clip = make_video(None, frames=8, w=64, h=48, seed=seed)
    return httpx.post(base + "/v1/chat/completions", timeout=120, json={
        "model": "auroracap", "max_tokens": 2, "num_frames": 2, "messages": [{"role": "user", "content": [
            {"type": "video_url", "video_url": {"url": data_url(clip)}}, {"type": "text", "text": "Describe."}]}]})


def health_while(base: str, done: threading.Event, proc: psutil.Process, rss: list[int]) -> list[float]:
    """Latencies of /health polled until ``done``; the server tree's resident bytes sampled beside them into
    ``rss`` (a frame held at full size shows while it is held, even if its memory is given back after)."""
    latencies = []
    while not done.is_set():
        started = time.monotonic()
        assert httpx.get(base + "/health", timeout=5).status_code == 200
        latencies.append(time.monotonic() - started)
        rss.append(tree_rss(proc))
        time.sleep(0.05)
    return latencies


def test_hostile_corpus(server, hostile_corpus):
    # The server and every process under it: the media workers decode, and their growth counts too.
    proc, samples = psutil.Process(server.proc.pid), []
    assert good_request(server.base, seed=5).status_code == 200  # warm: the first request's one-off costs
    before = tree_rss(proc)
    for name, h in hostile_corpus.items():
        done, latencies = threading.Event(), []
        poller = threading.Thread(target=lambda: latencies.extend(health_while(server.base, done, proc, samples)))
        poller.start()
        started = time.monotonic()
        try:
            r = httpx.post(server.base + "/v1/chat/completions", json=body(h), timeout=120)
        finally:
            done.set()
            poller.join()
        took = time.monotonic() - started
        assert r.status_code == h.status, (name, r.text)
        if h.status != 200:
            validate("ErrorResponse", r.json())
            assert r.json()["error"]["code"] == h.code, (name, r.json())
            assert took < 5, (name, took)
        assert max(latencies) < 1.0, (name, max(latencies))
    samples.append(tree_rss(proc))
    growth = max(samples) - before  # the peak, or what stayed
    assert growth < RSS_GROWTH_BOUND, growth / 2**20
    assert good_request(server.base, seed=6).status_code == 200


def test_dropped_expensive_requests_free_the_server(server, hostile_corpus):
    expensive = body(hostile_corpus["64 frames of 4K"])  # ~10 s of decoding on this machine
    for i in range(5):  # more than SGLang's 4 media threads: left running, they would hold every one
        # Another frame count each time: the corpus test already served 64 frames, which the processed-media
        # cache would answer without decoding.
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(server.base + "/v1/chat/completions", json={**expensive, "num_frames": 63 - i},
                       timeout=httpx.Timeout(30, read=0.5))
    started = time.monotonic()
    r = good_request(server.base, seed=7)  # one slot (--max-concurrency 1): free only if the drops were let go
    assert r.status_code == 200, r.text
    assert time.monotonic() - started < 8
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = httpx.get(server.base + "/metrics").text
        if metric_values(text, "aurora_requests_in_flight") == [0.0] and metric_values(text, "aurora_requests_queued") == [0.0]:
            break
        time.sleep(0.1)
    assert metric_values(text, "aurora_requests_in_flight") == [0.0]
    assert metric_values(text, "aurora_requests_queued") == [0.0]
