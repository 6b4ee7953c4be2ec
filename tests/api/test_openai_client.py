"""The real ``openai`` client against the real server: video (data: and file://), image, streaming, usage.

Every response body and stream chunk is also validated against OpenAI's own JSON schemas.
"""

from __future__ import annotations

import json

import openai
import pytest

from aurora_serve.model.token_count import tokens_per_frame
from tests.support.clips import data_url
from tests.api.schemas import validate

pytestmark = pytest.mark.engine
MODEL = "auroracap"


def video_messages(url: str, text: str = "Describe the video in detail.", **part_options) -> list[dict]:
    return [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": url, **part_options}},
                                         {"type": "text", "text": text}]}]


def test_video_data_url_non_streaming(openai_client, media_dir):
    url = data_url((media_dir / "clip.mp4").read_bytes())
    raw = openai_client.chat.completions.with_raw_response.create(
        model=MODEL, messages=video_messages(url), max_tokens=8,
        extra_body={"token_kept_ratio": 0.2, "num_frames": 4})
    validate("CreateChatCompletionResponse", json.loads(raw.http_response.text))
    resp = raw.parse()
    usage = resp.usage
    assert usage.visual_tokens == 4 * tokens_per_frame(0.2) == 684
    assert 1 <= usage.completion_tokens <= 8
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens > usage.visual_tokens
    assert usage.prompt_tokens_details.cached_tokens >= 0
    assert resp.choices[0].finish_reason in ("stop", "length")
    assert resp.choices[0].message.role == "assistant"
    assert resp.model == MODEL and resp.object == "chat.completion"


def test_video_file_url_streaming_matches_non_streaming(openai_client, media_dir):
    """Greedy decoding: the streamed deltas concatenate to the non-streamed text; usage comes last."""
    messages = video_messages(f"file://{media_dir / 'clip.mp4'}")
    extra = {"token_kept_ratio": 0.2, "num_frames": 4}
    whole = openai_client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8, extra_body=extra)
    stream = openai_client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8, extra_body=extra,
                                                   stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == whole.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].usage.visual_tokens == 4 * tokens_per_frame(0.2)
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    # the same video at the same ρ and F: its prompt is served from the prefix cache the second time
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens >= chunks[-1].usage.visual_tokens


def test_stream_without_include_usage_has_no_usage_field(http, media_dir):
    body = {"model": MODEL, "max_tokens": 4, "stream": True,
            "messages": video_messages(f"file://{media_dir / 'clip.mp4'}"), "num_frames": 2}
    with http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    for payload in map(json.loads, events[:-1]):
        assert "usage" not in payload
        validate("CreateChatCompletionStreamResponse", payload)


def test_image_and_per_part_options(openai_client, media_dir):
    image = data_url((media_dir / "still.jpg").read_bytes(), "image/jpeg")
    resp = openai_client.chat.completions.create(
        model=MODEL, max_tokens=4, extra_body={"token_kept_ratio": 0.5},
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}},
                                               {"type": "text", "text": "What is this?"}]}])
    assert resp.usage.visual_tokens == tokens_per_frame(0.5)
    # per-part options win over the top-level ones
    resp = openai_client.chat.completions.create(
        model=MODEL, max_tokens=4, extra_body={"token_kept_ratio": 0.2, "num_frames": 8},
        messages=video_messages(f"file://{media_dir / 'clip.mp4'}", num_frames=2, token_kept_ratio=1.0))
    assert resp.usage.visual_tokens == 2 * tokens_per_frame(1.0)


def test_image_and_video_in_one_request(openai_client, media_dir):
    image = data_url((media_dir / "still.jpg").read_bytes(), "image/jpeg")
    content = [{"type": "image_url", "image_url": {"url": image}},
               {"type": "video_url", "video_url": {"url": f"file://{media_dir / 'clip.mp4'}", "num_frames": 2}},
               {"type": "text", "text": "Compare them."}]
    resp = openai_client.chat.completions.create(model=MODEL, max_tokens=4, extra_body={"token_kept_ratio": 0.3},
                                                 messages=[{"role": "user", "content": content}])
    assert resp.usage.visual_tokens == 3 * tokens_per_frame(0.3)


def test_short_video_uses_the_frames_it_has(openai_client, media_dir):
    resp = openai_client.chat.completions.create(
        model=MODEL, max_tokens=2, messages=video_messages(f"file://{media_dir / 'short.mp4'}"),
        extra_body={"token_kept_ratio": 0.2, "num_frames": 8})
    assert resp.usage.visual_tokens == 3 * tokens_per_frame(0.2)  # the clip has 3 frames


def test_shared_sample_video(openai_client, media_dir):
    if not (media_dir / "sample.mp4").is_file():
        pytest.skip("../shared/media is absent: no sample video")
    resp = openai_client.chat.completions.create(
        model=MODEL, max_tokens=4, messages=video_messages(f"file://{media_dir / 'sample.mp4'}"),
        extra_body={"token_kept_ratio": 0.2, "num_frames": 2})
    assert resp.usage.visual_tokens == 2 * tokens_per_frame(0.2)


def test_text_only_greedy_is_deterministic_and_sampling_params_pass(openai_client):
    messages = [{"role": "system", "content": "You caption videos."}, {"role": "user", "content": "Hello"}]
    a = openai_client.chat.completions.create(model=MODEL, messages=messages, max_tokens=6)
    b = openai_client.chat.completions.create(model=MODEL, messages=messages, max_completion_tokens=6)
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.usage.visual_tokens == 0
    sampled = openai_client.chat.completions.create(model=MODEL, messages=messages, max_tokens=6, temperature=0.8,
                                                    top_p=0.9, seed=7, stop=["zzz"])
    assert sampled.usage.completion_tokens <= 6


def test_models_list_and_unknown_model(openai_client):
    raw = openai_client.models.with_raw_response.list()
    validate("ListModelsResponse", json.loads(raw.http_response.text))
    assert [m.id for m in raw.parse().data] == [MODEL]
    with pytest.raises(openai.NotFoundError) as err:
        openai_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "model_not_found"


def test_unsupported_features_say_so(openai_client):
    for kwargs, param in [({"n": 2}, "n"), ({"logprobs": True}, "logprobs"),
                          ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools")]:
        with pytest.raises(openai.BadRequestError) as err:
            openai_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], **kwargs)
        assert err.value.param == param and "not supported" in err.value.message
