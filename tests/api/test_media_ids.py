"""Media uuids over the real server: a part's ``uuid`` names its media, so a later part may send the uuid alone
(no url: nothing fetched, nothing decoded). Ids are per API key; an unknown or evicted id is a 400, never a
guess. Every body is validated against OpenAI's schemas.
"""

from __future__ import annotations

import asyncio
import uuid as uuidlib

import httpx
import pytest

from aurora_serve.model.token_count import tokens_per_frame
from tests.api.conftest import API_KEY, OTHER_KEY
from tests.support.clips import data_url
from tests.support.server import metric_values
from tests.api.schemas import validate

pytestmark = pytest.mark.engine
CHAT = "/v1/chat/completions"


def body(part: dict, **top) -> dict:
    return {"model": "auroracap", "max_tokens": 6, "messages": [
        {"role": "user", "content": [part, {"type": "text", "text": "Describe the video in detail."}]}], **top}


def video(uuid=None, url=None, **options) -> dict:
    part = {"type": "video_url"}
    if url is not None or options:
        part["video_url"] = {**({"url": url} if url is not None else {}), **options}
    if uuid is not None:
        part["uuid"] = uuid
    return part


def fetches(http) -> float:
    return sum(metric_values(http.get("/metrics").text, "aurora_media_fetch_seconds_count"))


def ok(http, payload: dict) -> dict:
    r = http.post(CHAT, json=payload)
    assert r.status_code == 200, r.text
    validate("CreateChatCompletionResponse", r.json())
    return r.json()


def refused(http, payload: dict, code: str | None = None, status: int = 400) -> dict:
    r = http.post(CHAT, json=payload)
    assert r.status_code == status, r.text
    validate("ErrorResponse", r.json())
    if code is not None:
        assert r.json()["error"]["code"] == code, r.json()
    return r.json()["error"]


@pytest.fixture
def new_id() -> str:
    return "clip-" + uuidlib.uuid4().hex  # fresh per test: the session's server keeps its cache


def test_uuid_alone_reuses_the_media_without_fetching(http, media_dir, new_id):
    url = data_url((media_dir / "clip.mp4").read_bytes())
    first = ok(http, body(video(new_id, url, num_frames=4, token_kept_ratio=0.2)))
    before = fetches(http)
    again = ok(http, body(video(new_id, num_frames=4, token_kept_ratio=0.2)))
    assert fetches(http) == before  # the uuid alone: nothing fetched
    assert again["choices"][0]["message"]["content"] == first["choices"][0]["message"]["content"]
    assert again["usage"]["visual_tokens"] == first["usage"]["visual_tokens"] == 4 * tokens_per_frame(0.2)
    # same media identity → same item hash → the radix cache holds the whole visual span
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] >= again["usage"]["visual_tokens"]


def test_uuid_alone_at_another_ratio_and_as_top_level_options(http, media_dir, new_id):
    ok(http, body(video(new_id, f"file://{media_dir / 'clip.mp4'}", num_frames=4)))
    out = ok(http, body(video(new_id), num_frames=4, token_kept_ratio=0.5))  # ρ does not change the pixels
    assert out["usage"]["visual_tokens"] == 4 * tokens_per_frame(0.5)


def test_uuid_with_the_url_gives_the_same_caption_as_without(http, media_dir, new_id):
    url = f"file://{media_dir / 'clip.mp4'}"
    plain = ok(http, body(video(url=url, num_frames=4)))
    named = ok(http, body(video(new_id, url, num_frames=4)))
    assert named["choices"][0]["message"]["content"] == plain["choices"][0]["message"]["content"]


def test_image_uuid(http, media_dir, new_id):
    part = {"type": "image_url", "image_url": {"url": f"file://{media_dir / 'still.jpg'}"}, "uuid": new_id}
    first = ok(http, body(part))
    again = ok(http, body({"type": "image_url", "uuid": new_id}))
    assert again["choices"][0]["message"]["content"] == first["choices"][0]["message"]["content"]
    error = refused(http, body(video(new_id)), code="media_not_cached")  # an image's id does not name a video
    assert "no cached video" in error["message"]


def test_unknown_uuid_is_refused_and_the_server_goes_on(http, media_dir, new_id):
    error = refused(http, body(video(new_id, num_frames=4)), code="media_not_cached")
    assert new_id in error["message"] and error["param"] == "uuid"
    ok(http, body(video(url=f"file://{media_dir / 'clip.mp4'}", num_frames=2)))


def test_another_frame_count_is_not_cached(http, media_dir, new_id):
    ok(http, body(video(new_id, f"file://{media_dir / 'clip.mp4'}", num_frames=4)))
    error = refused(http, body(video(new_id, num_frames=2)), code="media_not_cached")
    assert "num_frames=2" in error["message"]


def test_ids_are_per_api_key(server, http, media_dir, new_id):
    ok(http, body(video(new_id, f"file://{media_dir / 'clip.mp4'}", num_frames=4)))
    with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {OTHER_KEY}"}, timeout=120) as other:
        error = refused(other, body(video(new_id, num_frames=4)), code="media_not_cached")
        assert OTHER_KEY not in error["message"] and "sk-" not in error["message"]  # no scope or key echoed
        ok(other, body(video(new_id, f"file://{media_dir / 'clip.mp4'}", num_frames=4)))  # its own, now
        ok(other, body(video(new_id, num_frames=4)))


@pytest.mark.parametrize("part", [
    {"type": "video_url"},
    {"type": "video_url", "video_url": {"num_frames": 2}},
    {"type": "image_url", "image_url": {}},
    {"type": "video_url", "uuid": ""},
    {"type": "video_url", "uuid": "x" * 257},
    {"type": "video_url", "uuid": 7},
])
def test_malformed_parts(http, part):
    error = refused(http, body(part))
    assert error["type"] == "invalid_request_error"
    assert error["param"].startswith("messages.0.content.0")  # the part, not content's string branch


def test_the_load_generators_uuid_client_falls_back_to_the_url(server, tmp_path):
    """benchmarks/loadgen.py's repeated-uuid workload against the real server: uuid alone, url on a miss."""
    import openai

    from benchmarks import loadgen

    media = loadgen.MediaFactory(loadgen.ClipSpec(1, 64, 48), cache_dir=tmp_path, seed_base=uuidlib.uuid4().int % 10**9)
    items = loadgen.requests("repeated-uuid", 2, media)
    assert items[0].key == items[1].key and all(m.by_uuid for m in items)

    async def run():
        client = openai.AsyncOpenAI(base_url=server.base + "/v1", api_key=API_KEY, max_retries=0, timeout=120)
        return [await loadgen.chat_once(client, "auroracap", m, max_tokens=4, num_frames=4, ratio=0.2,
                                        ignore_eos=True) for m in items]

    first, second = asyncio.run(run())
    assert first.ok and first.resent, first.error  # not cached yet: refused, then sent with the url
    assert second.ok and not second.resent, second.error
    assert second.cached_tokens >= second.visual_tokens == 4 * tokens_per_frame(0.2)
