"""The HTTP layer over a scripted fake engine (no SGLang, milliseconds): paths the real tiny model cannot
be made to take on demand — an engine failure after the 200, a slow start, a failed start."""

from __future__ import annotations

import json
import threading

import pytest
from fastapi.testclient import TestClient

from aurora_serve.api.routes import create_app
from aurora_serve.config import parse_settings
from tests.api.schemas import validate
from tests.support.fake_engine import FakeEngine

LOCAL = "http://127.0.0.1"  # a key-less server answers loopback Hosts (TestClient's default is "testserver")


@pytest.fixture()
def client():
    FakeEngine.gate, FakeEngine.fail_start = None, False
    app = create_app(parse_settings([], environ={}), engine_factory=FakeEngine)
    with TestClient(app, base_url=LOCAL) as c:
        _wait(lambda: c.get("/ready").status_code == 200)
        yield c


def _wait(predicate, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def body(text: str, **extra) -> dict:
    return {"model": "auroracap", "messages": [{"role": "user", "content": text}], **extra}


def events(response) -> list:
    out = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert out[-1] == "[DONE]"
    return [json.loads(x) for x in out[:-1]]


def test_stream_deltas_and_usage(client):
    r = client.post("/v1/chat/completions", json=body("hi", stream=True, stream_options={"include_usage": True}))
    chunks = events(r)
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    assert [c["choices"][0]["delta"].get("content") for c in chunks[:-1]] == ["", "Hello", " world"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 12
    assert all(c["usage"] is None for c in chunks[:-1])


def test_failure_before_the_first_token_is_an_envelope(client):
    r = client.post("/v1/chat/completions", json=body("raise-before", stream=True))
    assert r.status_code == 400 and r.headers["content-type"] == "application/json"
    validate("ErrorResponse", r.json())


@pytest.mark.parametrize("script", ["raise-mid", "abort-mid"])
def test_failure_after_the_200_is_one_error_event_then_done(client, script):
    r = client.post("/v1/chat/completions", json=body(script, stream=True))
    assert r.status_code == 200
    chunks = events(r)
    errors = [c for c in chunks if "error" in c]
    assert len(errors) == 1 and chunks[-1] is errors[0]
    validate("ErrorResponse", errors[0])
    engine = client.app.state.lifecycle.engine
    assert client.app.state.admission.in_flight == 0
    assert len(engine.aborted) == (1 if script == "raise-mid" else 0)  # an engine abort is already over


def test_non_stream_engine_abort_is_an_envelope(client):
    r = client.post("/v1/chat/completions", json=body("abort-mid"))
    assert r.status_code == 500
    validate("ErrorResponse", r.json())
    assert r.json()["error"]["message"] == "scheduler out of memory"


def test_loading_then_ready():
    FakeEngine.gate, FakeEngine.fail_start = threading.Event(), False
    app = create_app(parse_settings([], environ={}), engine_factory=FakeEngine)
    with TestClient(app, base_url=LOCAL) as c:
        assert c.get("/health").status_code == 200
        r = c.get("/ready")
        assert r.status_code == 503 and r.json()["error"]["code"] == "loading"
        r = c.post("/v1/chat/completions", json=body("hi"))
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        FakeEngine.gate.set()
        _wait(lambda: c.get("/ready").status_code == 200)
        answer = c.post("/v1/chat/completions", json=body("hi")).json()
        assert answer["choices"][0]["message"]["content"] == "Hello world"


def test_failed_start_is_unhealthy():
    FakeEngine.gate, FakeEngine.fail_start = None, True
    app = create_app(parse_settings([], environ={}), engine_factory=FakeEngine)
    with TestClient(app, base_url=LOCAL) as c:
        _wait(lambda: c.get("/health").status_code == 503)
        assert c.get("/ready").json()["error"]["code"] == "failed"
    FakeEngine.fail_start = False


def test_docs_pages_only_when_enabled():
    """FastAPI's /docs and /redoc load Swagger UI / ReDoc from a CDN: off by default, on with --enable-docs."""
    for argv, status in (([], 404), (["--enable-docs"], 200)):
        app = create_app(parse_settings(argv, environ={}), engine_factory=FakeEngine)
        with TestClient(app, base_url=LOCAL) as c:
            assert c.get("/docs").status_code == status and c.get("/redoc").status_code == status
            assert c.get("/openapi.json").status_code == 200


def response_events(response) -> list[dict]:
    """A Responses stream: ``event: <type>`` then ``data: <json>`` per event, no [DONE]."""
    names = [line[7:] for line in response.text.splitlines() if line.startswith("event: ")]
    data = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
    assert names == [d["type"] for d in data]
    for event in data:
        validate("ResponseStreamEvent", event)
    assert [d["sequence_number"] for d in data] == list(range(len(data)))
    return data


def test_a_responses_stream_that_fails_after_the_200_ends_with_error_then_failed(client):
    r = client.post("/v1/responses", json={"model": "auroracap", "input": "raise-mid", "stream": True})
    assert r.status_code == 200
    data = response_events(r)
    assert [d["type"] for d in data[-2:]] == ["error", "response.failed"]
    assert data[-2]["message"] == "decoder died mid-stream" and data[-1]["response"]["status"] == "failed"
    assert data[-1]["response"]["output"][0]["content"][0]["text"] == "Hello"  # what was sent before it failed
    assert client.app.state.admission.in_flight == 0
    assert len(client.app.state.lifecycle.engine.aborted) == 1


def test_a_response_cut_by_max_output_tokens_is_incomplete(client):
    body = {"model": "auroracap", "input": "hi", "max_output_tokens": 3, "ignore_eos": True}
    answer = client.post("/v1/responses", json=body).json()
    validate("Response", answer)
    assert answer["status"] == "incomplete" and answer["incomplete_details"] == {"reason": "max_output_tokens"}
    data = response_events(client.post("/v1/responses", json={**body, "stream": True}))
    assert data[-1]["type"] == "response.incomplete" and data[-1]["response"]["usage"]["output_tokens"] == 3


def test_continuous_usage_is_on_every_chunk_and_counts_up(client):
    r = client.post("/v1/chat/completions", json=body("hi", stream=True, max_completion_tokens=3, ignore_eos=True,
                                                      stream_options={"continuous_usage_stats": True}))
    chunks = events(r)
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    assert [c["usage"]["completion_tokens"] for c in chunks] == [0, 1, 2, 3]  # no usage-only chunk without include
    assert all(c["usage"]["total_tokens"] == 10 + c["usage"]["completion_tokens"] for c in chunks)


def test_part_cap_and_frame_budget():
    FakeEngine.gate, FakeEngine.fail_start = None, False
    settings = parse_settings(["--max-frames", "8", "--max-frames-per-request", "10", "--max-media-per-request", "3"],
                              environ={})
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    video = {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAA", "num_frames": 8}}
    with TestClient(create_app(settings, engine_factory=FakeEngine), base_url=LOCAL) as c:
        _wait(lambda: c.get("/ready").status_code == 200)
        # four parts over the cap of three; then three parts asking for 8 + 1 + 8 frames, over the budget of 10
        for content, code in [([image] * 4, "too_many_media"), ([video, image, video], "too_many_frames")]:
            r = c.post("/v1/chat/completions", json={"model": "auroracap",
                                                     "messages": [{"role": "user", "content": content}]})
            assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text
            assert r.json()["error"]["param"] == "messages"
