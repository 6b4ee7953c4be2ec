"""``--server`` without a server: the request it sends, backoff on 429/503, row errors, giving up."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from aurora_serve.batch.backend import FatalError
from aurora_serve.batch.remote import ServerBackend, api_base, extension_fields
from aurora_serve.batch.tasks import Task
from aurora_serve.media.fetch import FetchLimits
from aurora_serve.media.item import MediaPolicy
from aurora_serve.model.token_count import tokens_per_frame
from tests.support.clips import make_video

COMPLETION = {"id": "c", "object": "chat.completion", "created": 0, "model": "auroracap",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": " A cat. "},
                           "finish_reason": "length"}],
              "usage": {"prompt_tokens": 900, "completion_tokens": 8, "total_tokens": 908,
                        "visual_tokens": 4 * tokens_per_frame(0.5)}}


def backend_for(script: list, seen: list, **kw) -> ServerBackend:
    """A backend whose HTTP answers are ``script`` (status, json, headers) in order, then 200s."""
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [
                {"id": "auroracap-x", "object": "model", "created": 0, "owned_by": "aurora"}]})
        seen.append(json.loads(request.content))
        status, body, headers = script.pop(0) if script else (200, COMPLETION, {})
        return httpx.Response(status, json=body, headers=headers)

    sleeps = kw.pop("sleeps", [])

    async def sleep(seconds):
        sleeps.append(seconds)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    return ServerBackend("http://127.0.0.1:9", "k", MediaPolicy(), FetchLimits(), {"temperature": 0.0, "top_p": 1.0,
                         "max_new_tokens": 8}, http_client=client, sleep=sleep, **kw)


def run_row(backend, task):
    async def go():
        await backend.start()
        try:
            return await backend.row(task)
        finally:
            await backend.close()
    return asyncio.run(go())


VIDEO = make_video(None, frames=12, w=64, h=48, seed=5)


def task(**options) -> Task:
    return Task("v1", "", "Describe.", {"token_kept_ratio": 0.5, "num_frames": 4, **options}, data=VIDEO)


def test_the_request_names_the_contract_fields_and_the_row_reads_the_answer():
    seen: list = []
    row = run_row(backend_for([], seen), task())
    body = seen[0]
    assert body["model"] == "auroracap-x" and body["max_tokens"] == 8 and body["temperature"] == 0.0
    assert (body["token_kept_ratio"], body["num_frames"]) == (0.5, 4) and "fps" not in body
    part = body["messages"][0]["content"][0]
    assert part["type"] == "video_url" and part["video_url"]["url"].startswith("data:")
    assert row["caption"] == "A cat." and row["frames"] == 4 and row["error"] is None  # frames from visual tokens
    assert row["model"] == "auroracap-x" and row["finish_reason"] == "length"


def test_extension_fields_follow_the_sampling_rule():
    policy = MediaPolicy()
    rate = policy.item("video", b"x", token_kept_ratio=0.2, fps=2, max_frames=16, start=3, end=9)
    assert extension_fields(rate) == {"token_kept_ratio": 0.2, "fps": 2.0, "max_frames": 16, "start": 3.0, "end": 9.0}
    image = policy.item("image", b"x", token_kept_ratio=0.3)
    assert extension_fields(image) == {"token_kept_ratio": 0.3}
    assert api_base("http://h:8000/") == "http://h:8000/v1" and api_base("http://h/v1") == "http://h/v1"


def test_usage_frames_wins_when_the_server_reports_it():
    answer = json.loads(json.dumps(COMPLETION))
    answer["usage"]["frames"] = [3]
    row = run_row(backend_for([(200, answer, {})], []), task())
    assert row["frames"] == 3


def test_429_and_503_are_retried_after_retry_after_or_backoff():
    sleeps, seen = [], []
    backend = backend_for([(429, {"error": {"message": "busy"}}, {"Retry-After": "2"}),
                           (503, {"error": {"message": "draining"}}, {})], seen, sleeps=sleeps)
    row = run_row(backend, task())
    assert row["error"] is None and len(seen) == 3 and backend.retries == 2
    assert sleeps[0] == 2.0 and 0 < sleeps[1] <= 1.0


def test_other_http_errors_are_the_rows_error():
    envelope = {"error": {"message": "num_frames must be ...", "type": "invalid_request_error", "param": "num_frames",
                          "code": "invalid_request"}}
    row = run_row(backend_for([(400, envelope, {})], []), task())
    assert row["error"] == {"type": "invalid_request", "message": "num_frames must be ..."} and row["caption"] is None


def test_a_server_that_keeps_refusing_ends_the_run():
    backend = backend_for([(503, {}, {})] * 10, [], max_retries=3)
    with pytest.raises(FatalError, match="after 3 retries"):
        run_row(backend, task())
