"""The requests other clients build, replayed as they build them, against the real server.

Each body is the JSON the client's own source builds (quoted per test: file and lines of the released
wheel, read from ``pip download <pkg>==<version> --no-deps``); the clients themselves are not dependencies.
Where a client sends through the ``openai`` SDK (lmms-eval), the SDK sends it here too.
"""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from aurora_serve.model.token_count import tokens_per_frame
from tests.api.schemas import validate
from tests.support.clips import data_url, frame_rgb

pytestmark = pytest.mark.engine
MODEL = "auroracap"


def sse(response) -> list[dict]:
    lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(x) for x in lines[:-1]]


def png_frames(n: int) -> list[dict]:
    """lmms-eval's frames: each an ``image_url`` part holding a base64 PNG (``LMMS_IMAGE_ENCODE_FORMAT``'s default)."""
    parts = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(frame_rgb(i * 7)).save(buf, format="PNG")
        parts.append({"type": "image_url", "image_url": {"url": data_url(buf.getvalue(), "image/png")}})
    return parts


def test_guidellm_streaming_benchmark(http, media_dir):
    """guidellm 0.8.1, guidellm/backends/openai/request_handlers.py: ``ChatCompletionsRequestHandler.format``
    (lines 1147-1230) sends ``model``, ``stream``, ``stream_options: {include_usage, continuous_usage_stats}``
    (1171-1178), ``max_completion_tokens`` + ``stop: None`` + ``ignore_eos: True`` for a fixed output length
    (1180-1187), then ``messages``: the user content from ``_format_prompts`` (884-931), text then
    ``{"type": "video_url", "video_url": {"url": …}}`` (roundrobin, 1037-1051). ``add_streaming_line`` (1280-1331)
    keeps the last ``usage`` it sees; ``extract_metrics`` (778-836) reads ``prompt_tokens_details.image_tokens`` /
    ``video_tokens``. Refused as unrecognised before this server knew ``continuous_usage_stats``."""
    body = {"model": MODEL, "stream": True, "stream_options": {"include_usage": True, "continuous_usage_stats": True},
            "max_completion_tokens": 5, "stop": None, "ignore_eos": True,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Describe the video."},
                {"type": "video_url", "video_url": {"url": data_url((media_dir / "clip.mp4").read_bytes())}}]}]}
    with http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200, r.read()
        chunks = sse(r)
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    assert all(c["usage"] is not None for c in chunks)  # usage on every chunk, cumulative (vLLM's semantics)
    counts = [c["usage"]["completion_tokens"] for c in chunks if c["choices"]]
    assert counts == sorted(counts) and counts[0] == 0 and counts[-1] == 5
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    last = chunks[-1]
    assert last["choices"] == [] and text  # the include_usage chunk closes the stream
    details = last["usage"]["prompt_tokens_details"]
    assert details["video_tokens"] == last["usage"]["visual_tokens"] == 4 * tokens_per_frame(0.8)
    assert details["image_tokens"] == 0 and last["usage"]["frames"] == [4]


def test_guidellm_non_streaming(http, media_dir):
    """The same handler without ``stream``: ``compile_non_streaming`` (1232-1278) reads ``usage`` once."""
    body = {"model": MODEL, "max_completion_tokens": 3, "stop": None, "ignore_eos": True,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Describe the image."},
                {"type": "image_url", "image_url": {"url": f"file://{media_dir / 'still.jpg'}"}}]}]}
    r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    validate("CreateChatCompletionResponse", r.json())
    usage = r.json()["usage"]
    assert usage["completion_tokens"] == 3 and usage["frames"] == [1]
    assert usage["prompt_tokens_details"]["image_tokens"] == tokens_per_frame(0.8)


def test_lmms_eval_default_sends_a_video_as_ten_image_frames(openai_client):
    """lmms-eval 0.7.3, lmms_eval/models/chat/openai.py ``build_payload_for_index`` (lines 188-229): ``messages``
    from ``ChatMessages.to_openai_messages`` (lmms_eval/protocol.py 96-146), where a video without
    ``pass_video_url`` becomes ``max_frames_num`` frames (default 10, models/simple/openai.py line 83), each
    ``{"type": "image_url", "image_url": {"url": "data:image/png;base64,…"}}`` (134-141); ``model``, ``max_tokens``,
    ``temperature: 0``; sent by ``client.chat.completions.create(**payload)`` (line 100). Refused before with
    ``too_many_media`` (4 parts a request); the limit now follows the frame budget."""
    content = [*png_frames(10), {"type": "text", "text": "What happens in the video?"}]
    payload = {"messages": [{"role": "user", "content": content}], "model": MODEL, "max_tokens": 2, "temperature": 0}
    resp = openai_client.chat.completions.create(**payload)
    assert resp.usage.frames == [1] * 10
    assert resp.usage.visual_tokens == resp.usage.prompt_tokens_details.image_tokens == 10 * tokens_per_frame(0.8)


def test_lmms_eval_pass_video_url(openai_client, media_dir):
    """lmms-eval 0.7.3 with ``pass_video_url=True``: the video as ``{"type": "video_url", "video_url": {"url":
    "file://…"}}`` (protocol.py 117-125), ``extra_body["media_io_kwargs"] = {"video": {"num_frames":
    int(self.max_frames_num)}}`` (models/chat/openai.py 214-215) and, with ``enable_thinking_kwarg``,
    ``extra_body["chat_template_kwargs"] = {"enable_thinking": …}`` (216-219). Here ``max_frames_num=3``."""
    content = [{"type": "video_url", "video_url": {"url": f"file://{media_dir / 'indexed.mp4'}"}},
               {"type": "text", "text": "What happens in the video?"}]
    payload = {"messages": [{"role": "user", "content": content}], "model": MODEL, "max_tokens": 3, "temperature": 0,
               "extra_body": {"media_io_kwargs": {"video": {"num_frames": 3}},
                              "chat_template_kwargs": {"enable_thinking": False}}}
    resp = openai_client.chat.completions.create(**payload)
    assert resp.usage.frames == [3] and resp.usage.visual_tokens == 3 * tokens_per_frame(0.8)
    # chat_template_kwargs changes nothing: AuroraCap's template reads no variables
    plain = openai_client.chat.completions.create(**{**payload, "extra_body": {"num_frames": 3}})
    assert plain.usage.prompt_tokens == resp.usage.prompt_tokens
    assert plain.choices[0].message.content == resp.choices[0].message.content


def test_vllm_media_kwargs(openai_client, media_dir):
    """vLLM's ``ChatCompletionRequest`` (vllm/entrypoints/openai/chat_completion/protocol.py): ``media_io_kwargs:
    dict[str, dict[str, Any]]`` keyed by modality, ``mm_processor_kwargs: dict[str, Any]``; its docs' example is
    ``extra_body={"mm_processor_kwargs": {"fps": 1, "do_sample_frames": True}}``."""
    video = [{"type": "video_url", "video_url": {"url": f"file://{media_dir / 'indexed.mp4'}"}},
             {"type": "text", "text": "Describe."}]
    messages = [{"role": "user", "content": video}]
    resp = openai_client.chat.completions.create(model=MODEL, messages=messages, max_tokens=2, extra_body={
        "mm_processor_kwargs": {"fps": 1, "do_sample_frames": True}, "token_kept_ratio": 0.2})
    assert resp.usage.frames == [5]  # 1 fps over 5 s
    resp = openai_client.chat.completions.create(model=MODEL, messages=messages, max_tokens=2, extra_body={
        "media_io_kwargs": {"video": {"fps": 0.5}}, "token_kept_ratio": 0.2})
    assert resp.usage.frames == [3]  # 0.5 fps x 5 s = 2.5, rounded half up


def test_sglang_video_url_fps_and_max_frames(http, media_dir):
    """SGLang 0.5.23's ``ChatCompletionMessageContentVideoURL`` (python/sglang/srt/entrypoints/openai/protocol.py
    lines 625-633): ``url``, ``fps``, ``max_frames`` (and InternVL's tiling fields, refused here by name)."""
    part = {"type": "video_url", "video_url": {"url": f"file://{media_dir / 'indexed.mp4'}", "fps": 2.0,
                                                "max_frames": 3}}
    body = {"model": MODEL, "max_tokens": 2, "messages": [{"role": "user", "content": [
        part, {"type": "text", "text": "Describe."}]}]}
    r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["frames"] == [3]  # 2 fps x 5 s = 10, capped at 3
    part["video_url"]["max_dynamic_patch"] = 4
    r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages.0.content.0.video_url.max_dynamic_patch"


def test_sampling_extras_reach_sglang(openai_client):
    """vLLM's and SGLang's extras (``top_k``, ``min_p``, ``repetition_penalty``, ``min_tokens``): accepted, and
    taken by SGLang's sampler: sampling at temperature 1 with ``top_k=1`` (or ``min_p=1``) is greedy decoding."""
    messages = [{"role": "user", "content": "Say something long."}]
    greedy = openai_client.chat.completions.create(model=MODEL, messages=messages, max_tokens=6,
                                                   extra_body={"ignore_eos": True})
    common = {"model": MODEL, "messages": messages, "max_tokens": 6, "temperature": 1.0, "seed": 3}
    sampled = openai_client.chat.completions.create(**common, extra_body={"ignore_eos": True})
    assert sampled.choices[0].message.content != greedy.choices[0].message.content  # the check can fail
    for extra in ({"top_k": 1}, {"min_p": 1.0}):
        out = openai_client.chat.completions.create(**common, extra_body={"ignore_eos": True, **extra})
        assert out.choices[0].message.content == greedy.choices[0].message.content, extra
    out = openai_client.chat.completions.create(model=MODEL, messages=messages, max_tokens=6, extra_body={
        "top_k": 0, "min_p": 0.0, "repetition_penalty": 1.1, "min_tokens": 6})
    assert out.usage.completion_tokens == 6


def test_what_is_still_refused_says_so_by_name(openai_client):
    import openai

    messages = [{"role": "user", "content": "hi"}]
    for extra, param, words in [({"use_beam_search": True}, "use_beam_search", "beam search"),
                                ({"guided_json": {"type": "object"}}, "guided_json", "constrained"),
                                ({"chat_template": "{{ messages }}"}, "chat_template", "fixed Vicuna template"),
                                ({"media_io_kwargs": {"video": {"num_frames": 2, "max_duration": 5}}},
                                 "media_io_kwargs.video.max_duration", "num_frames, fps"),
                                ({"top_k": -5}, "top_k", "greater than or equal to -1"),
                                ({"use_beam_serch": False}, "use_beam_serch", "Unrecognized")]:
        with pytest.raises(openai.BadRequestError) as err:
            openai_client.chat.completions.create(model=MODEL, messages=messages, max_tokens=2, extra_body=extra)
        assert err.value.param == param and words in err.value.message, err.value.message
    ok = openai_client.chat.completions.create(model=MODEL, messages=messages, max_tokens=2,
                                               extra_body={"use_beam_search": False, "skip_special_tokens": True})
    assert ok.choices[0].finish_reason in ("stop", "length")  # vLLM's defaults pass
