"""A corpus of bad requests: each must get a 4xx OpenAI error envelope (schema-validated), never a 5xx,
and the server must still answer a good request afterwards."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from tests.api.conftest import API_KEY, MAX_MEDIA_MB
from tests.support.clips import data_url, huge_png_header
from tests.support.server import metric_values
from tests.api.schemas import validate

pytestmark = pytest.mark.engine
CHAT, CAPTIONS, RESPONSES = "/v1/chat/completions", "/v1/captions", "/v1/responses"
MIB = 1024 * 1024


def chat(media_dir, *, content=None, **top):
    """A chat body: a video (file://clip.mp4) + text unless ``content`` is given; ``top`` overrides fields."""
    if content is None:
        content = [{"type": "video_url", "video_url": {"url": f"file://{media_dir / 'clip.mp4'}"}},
                   {"type": "text", "text": "Describe."}]
    body = {"model": "auroracap", "max_tokens": 4, "messages": [{"role": "user", "content": content}]}
    body.update(top)
    return {"json": {k: v for k, v in body.items() if v is not DROP}}


def video(url, **part):
    return [{"type": "video_url", "video_url": {"url": url, **part}}, {"type": "text", "text": "Describe."}]


def raw(text: str, content_type: str = "application/json"):
    return {"content": text.encode(), "headers": {"content-type": content_type}}


DROP = object()
B64 = lambda data: base64.b64encode(data).decode()  # noqa: E731


def cases(m):
    """(id, path, request kwargs, expected status or None for 'any 4xx') — ``m`` is the media dir."""
    clip = f"file://{m / 'clip.mp4'}"
    still = f"file://{m / 'still.jpg'}"
    valid = json.dumps(chat(m)["json"])
    return [
        ("malformed-json", CHAT, raw('{"model": "auroracap", "messages": ['), 400),
        ("json-array-body", CHAT, raw("[1, 2, 3]"), 400),
        ("empty-body", CHAT, raw(""), 400),
        ("text-plain-body", CHAT, raw(valid, "text/plain"), 400),
        ("missing-messages", CHAT, chat(m, messages=DROP), 400),
        ("empty-messages", CHAT, chat(m, messages=[]), 400),
        ("messages-not-list", CHAT, chat(m, messages="hello"), 400),
        ("message-without-role", CHAT, chat(m, messages=[{"content": "hi"}]), 400),
        ("role-tool", CHAT, chat(m, messages=[{"role": "tool", "content": "hi"}]), 400),
        ("content-int", CHAT, chat(m, content=42), 400),
        ("unknown-part-type", CHAT, chat(m, content=[{"type": "input_audio", "input_audio": {"data": "x"}}]), 400),
        ("misspelt-extension", CHAT, chat(m, token_kept_raito=0.2), 400),
        ("max-tokens-string", CHAT, chat(m, max_tokens="8"), 400),
        ("max-tokens-zero", CHAT, chat(m, max_tokens=0), 400),
        ("max-tokens-negative", CHAT, chat(m, max_tokens=-1), 400),
        ("temperature-3", CHAT, chat(m, temperature=3), 400),
        ("temperature-string", CHAT, chat(m, temperature="hot"), 400),
        ("top-p-zero", CHAT, chat(m, top_p=0), 400),
        ("stream-string", CHAT, chat(m, stream="yes"), 400),
        ("ratio-0", CHAT, chat(m, token_kept_ratio=0), 400),
        ("ratio-negative", CHAT, chat(m, token_kept_ratio=-1), 400),
        ("ratio-1.5", CHAT, chat(m, token_kept_ratio=1.5), 400),
        ("ratio-nan", CHAT, raw(valid[:-1] + ', "token_kept_ratio": NaN}'), 400),
        ("ratio-infinity", CHAT, raw(valid[:-1] + ', "token_kept_ratio": Infinity}'), 400),
        ("ratio-string", CHAT, chat(m, token_kept_ratio="0.5"), 400),
        ("ratio-bool", CHAT, chat(m, token_kept_ratio=True), 400),
        ("part-ratio-0", CHAT, chat(m, content=video(clip, token_kept_ratio=0)), 400),
        ("frames-0", CHAT, chat(m, num_frames=0), 400),
        ("frames-1e6", CHAT, chat(m, num_frames=10**6), 400),
        ("frames-float", CHAT, chat(m, num_frames=2.5), 400),
        ("part-frames-negative", CHAT, chat(m, content=video(clip, num_frames=-3)), 400),
        ("video-url-without-url", CHAT, chat(m, content=[{"type": "video_url", "video_url": {}}]), 400),
        ("image-url-with-num-frames", CHAT,
         chat(m, content=[{"type": "image_url", "image_url": {"url": clip, "num_frames": 2}}]), 400),
        ("too-many-frames", CHAT, chat(m, content=video(clip, num_frames=16) * 3), 400),  # 48 > 40 a request
        ("too-many-images", CHAT, chat(m, content=[{"type": "image_url", "image_url": {"url": still}}] * 41), 400),
        ("fps-zero", CHAT, chat(m, fps=0), 400),
        ("fps-string", CHAT, chat(m, fps="2"), 400),
        ("part-max-frames-17", CHAT, chat(m, content=video(clip, fps=1, max_frames=17)), 400),
        ("end-before-start", CHAT, chat(m, start=3, end=1), 400),
        ("window-past-the-end", CHAT, chat(m, content=video(clip, start=100)), 400),
        ("conflicting-num-frames", CHAT, chat(m, num_frames=2, media_io_kwargs={"video": {"num_frames": 3}}), 400),
        ("media-io-kwargs-unknown-key", CHAT, chat(m, media_io_kwargs={"video": {"max_duration": 3}}), 400),
        ("mm-processor-kwargs-unknown-key", CHAT, chat(m, mm_processor_kwargs={"min_pixels": 3}), 400),
        ("vllm-beam-search", CHAT, chat(m, use_beam_search=True), 400),
        ("sglang-regex", CHAT, chat(m, regex="a+"), 400),
        ("top-k-minus-2", CHAT, chat(m, top_k=-2), 400),
        ("min-p-2", CHAT, chat(m, min_p=2), 400),
        ("repetition-penalty-0", CHAT, chat(m, repetition_penalty=0), 400),
        ("min-tokens-over-max", CHAT, chat(m, min_tokens=5), 400),
        ("chat-template-kwargs-list", CHAT, chat(m, chat_template_kwargs=["x"]), 400),
        ("media-in-assistant-message", CHAT, chat(m, messages=[{"role": "assistant", "content": video(clip)}]), 400),
        ("marker-in-text", CHAT, chat(m, content="<video> Describe."), 400),
        ("n-2", CHAT, chat(m, n=2), 400),
        ("logprobs", CHAT, chat(m, logprobs=True), 400),
        ("tools", CHAT, chat(m, tools=[{"type": "function", "function": {"name": "f"}}]), 400),
        ("response-format-json", CHAT, chat(m, response_format={"type": "json_object"}), 400),
        ("stream-options-without-stream", CHAT, chat(m, stream_options={"include_usage": True}), 400),
        ("five-stop-sequences", CHAT, chat(m, stop=["a", "b", "c", "d", "e"]), 400),
        ("unknown-model", CHAT, chat(m, model="gpt-4o"), 404),
        ("non-video-bytes", CHAT, chat(m, content=video(data_url(b"definitely not a video" * 50))), 415),
        ("non-video-file", CHAT, chat(m, content=video(f"file://{m / 'not_video.mp4'}")), 415),
        ("truncated-mp4", CHAT, chat(m, content=video(f"file://{m / 'truncated.mp4'}")), None),
        ("zero-frame-video", CHAT, chat(m, content=video(f"file://{m / 'empty_stream.mp4'}")), None),
        ("oversized-video-file", CHAT, chat(m, content=video(f"file://{m / 'big.bin'}")), 413),
        ("oversized-data-url", CHAT, chat(m, content=video(data_url(os.urandom(MAX_MEDIA_MB * MIB + 1)))), 413),
        ("huge-data-url-body", CHAT, chat(m, content=video(data_url(os.urandom(3 * MAX_MEDIA_MB * MIB)))), 413),
        ("image-bomb-header", CHAT,
         chat(m, content=[{"type": "image_url", "image_url": {"url": data_url(huge_png_header(), "image/png")}}]), 413),
        ("scheme-ftp", CHAT, chat(m, content=video("ftp://127.0.0.1/clip.mp4")), 400),
        ("scheme-javascript", CHAT, chat(m, content=video("javascript:alert(1)")), 400),
        ("scheme-missing", CHAT, chat(m, content=video("clip.mp4")), 400),
        ("file-outside-root", CHAT, chat(m, content=video("file:///etc/passwd")), 400),
        ("file-dotdot-escape", CHAT, chat(m, content=video(f"file://{m}/../../etc/passwd")), 400),
        ("file-missing-in-root", CHAT, chat(m, content=video(f"file://{m / 'nope.mp4'}")), 400),
        ("file-remote-host", CHAT, chat(m, content=video(f"file://example.com{m / 'clip.mp4'}")), 400),
        ("data-url-not-base64", CHAT, chat(m, content=video("data:video/mp4,rawbytes")), 400),
        ("data-url-bad-base64", CHAT, chat(m, content=video("data:video/mp4;base64,@@@not-base64@@@")), 400),
        ("data-url-empty", CHAT, chat(m, content=video("data:video/mp4;base64,")), 400),
        ("missing-api-key", CHAT, {**chat(m), "headers": {"Authorization": ""}}, 401),
        ("wrong-api-key", CHAT, {**chat(m), "headers": {"Authorization": "Bearer sk-wrong"}}, 401),
        ("basic-auth-scheme", CHAT, {**chat(m), "headers": {"Authorization": f"Basic {API_KEY}"}}, 401),
        ("wrong-method", CHAT, {"method": "GET"}, 405),
        ("unknown-path", "/v1/nothing-here", {}, 404),
        ("caption-no-url-no-file", CAPTIONS, {"json": {"prompt": "Describe."}}, 400),
        ("caption-malformed-json", CAPTIONS, raw('{"url": '), 400),
        ("caption-ratio-2", CAPTIONS, {"json": {"url": clip, "token_kept_ratio": 2}}, 400),
        ("caption-unknown-field", CAPTIONS, {"json": {"url": clip, "frames": 4}}, 400),
        ("caption-text-plain", CAPTIONS, raw(json.dumps({"url": clip}), "text/plain"), 400),
        ("caption-marker-in-prompt", CAPTIONS, {"json": {"url": clip, "prompt": "<image> hi"}}, 400),
        ("caption-form-frames-abc", CAPTIONS, lambda: {**upload(m / "clip.mp4"), "data": {"num_frames": "abc"}}, 400),
        ("caption-form-unknown-field", CAPTIONS, lambda: {**upload(m / "clip.mp4"), "data": {"colour": "red"}}, 400),
        ("caption-form-file-and-url", CAPTIONS, lambda: {**upload(m / "clip.mp4"), "data": {"url": clip}}, 400),
        ("caption-form-oversized-file", CAPTIONS, lambda: upload(m / "big.bin"), 413),
        ("caption-form-not-video", CAPTIONS, lambda: upload(m / "not_video.mp4"), 415),
        ("caption-fps-negative", CAPTIONS, {"json": {"url": clip, "fps": -1}}, 400),
        ("caption-form-start-abc", CAPTIONS, lambda: {**upload(m / "clip.mp4"), "data": {"start": "abc"}}, 400),
        ("responses-tools", RESPONSES, {"json": {"model": "auroracap", "input": "hi", "tools": [{"type": "x"}]}}, 400),
        ("responses-background", RESPONSES, {"json": {"model": "auroracap", "input": "hi", "background": True}}, 400),
        ("responses-previous-id", RESPONSES, {"json": {"model": "auroracap", "input": "hi",
                                                       "previous_response_id": "resp_1"}}, 400),
        ("responses-input-file", RESPONSES, {"json": {"model": "auroracap", "input": [{"role": "user", "content": [
            {"type": "input_file", "file_id": "file-1"}]}]}}, 400),
        ("responses-function-output-item", RESPONSES, {"json": {"model": "auroracap", "input": [
            {"type": "function_call_output", "call_id": "c", "output": "x"}]}}, 400),
        ("responses-unknown-field", RESPONSES, {"json": {"model": "auroracap", "input": "hi", "tempreature": 1}}, 400),
        ("responses-empty-input", RESPONSES, {"json": {"model": "auroracap", "input": []}}, 400),
        ("responses-unknown-model", RESPONSES, {"json": {"model": "gpt-4o", "input": "hi"}}, 404),
        ("stored-response", "/v1/responses/resp_1", {"method": "GET"}, 404),
        ("unknown-model-retrieve", "/v1/models/gpt-4o", {"method": "GET"}, 404),
    ]


def upload(path):
    return {"files": {"file": (path.name, path.read_bytes())}}


CASE_IDS = [c[0] for c in cases(Path("/not-read"))]  # names only; the bodies are built once per session


@pytest.fixture(scope="session")
def corpus(media_dir):
    return {c[0]: c[1:] for c in cases(media_dir)}


@pytest.mark.parametrize("case", CASE_IDS)
def test_bad_request_gets_a_4xx_envelope(case, corpus, http):
    path, kwargs, expected = corpus[case]
    kwargs = dict(kwargs() if callable(kwargs) else kwargs)
    method = kwargs.pop("method", "POST")
    overrides = kwargs.pop("headers", {})
    request = http.build_request(method, path, **kwargs)  # the client's API key is in request.headers
    for name, value in overrides.items():
        if value:
            request.headers[name] = value
        else:
            del request.headers[name]
    r = http.send(request)
    assert 400 <= r.status_code < 500, f"{case}: {r.status_code} {r.text[:300]}"
    if expected is not None:
        assert r.status_code == expected, f"{case}: {r.status_code} {r.text[:300]}"
    body = r.json()
    validate("ErrorResponse", body)
    assert body["error"]["message"]
    if r.status_code == 401:
        assert r.headers.get("www-authenticate") == "Bearer"


def test_corpus_is_large_enough():
    assert len(CASE_IDS) == len(set(CASE_IDS)) >= 40


def test_still_serves_after_the_corpus_and_never_5xx(http, media_dir, server):
    body = chat(media_dir, num_frames=2, token_kept_ratio=0.2)["json"]
    r = http.post(CHAT, json=body)
    assert r.status_code == 200, r.text
    validate("CreateChatCompletionResponse", r.json())
    metrics = http.get("/metrics").text
    five_xx = [line for line in metrics.splitlines()
               if line.startswith("aurora_requests_total") and 'status="5' in line]
    assert five_xx == []
    assert "Traceback" not in server.log_tail(10**7)
    assert metric_values(metrics, "aurora_requests_in_flight") == [0.0]
