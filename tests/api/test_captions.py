"""``POST /v1/captions``: JSON in / JSON out, JSON in / SSE out, multipart upload — with httpx and with the
README's ``curl`` commands (run for real when curl is installed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from string import Template

import pytest

from aurora_serve.model.token_count import tokens_per_frame
from tests.api.conftest import API_KEY
from tests.support.clips import data_url
from tests.api.schemas import validate

pytestmark = pytest.mark.engine


def check_caption(body: dict, kind: str, frames: int, ratio: float) -> None:
    assert body["object"] == "caption" and body["kind"] == kind
    assert isinstance(body["caption"], str) and body["finish_reason"] in ("stop", "length")
    assert body["num_frames"] == frames and body["token_kept_ratio"] == ratio
    assert body["usage"]["visual_tokens"] == frames * tokens_per_frame(ratio)
    usage = body["usage"]
    validate("CompletionUsage", usage)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def sse_payloads(text: str) -> list[str]:
    return [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]


def test_json_with_data_url(http, media_dir):
    url = data_url((media_dir / "clip.mp4").read_bytes())
    r = http.post("/v1/captions", json={"url": url, "token_kept_ratio": 0.2, "num_frames": 2, "max_tokens": 6})
    assert r.status_code == 200, r.text
    check_caption(r.json(), "video", 2, 0.2)


def test_json_default_prompt_and_image_kind(http, media_dir):
    r = http.post("/v1/captions", json={"url": f"file://{media_dir / 'still.jpg'}", "max_tokens": 4})
    assert r.status_code == 200, r.text
    check_caption(r.json(), "image", 1, 0.8)  # the server's default ρ


def test_json_streaming(http, media_dir):
    body = {"url": f"file://{media_dir / 'clip.mp4'}", "num_frames": 2, "token_kept_ratio": 0.2,
            "max_tokens": 6, "stream": True}
    with http.stream("POST", "/v1/captions", json=body) as r:
        assert r.status_code == 200
        payloads = sse_payloads(r.read().decode())
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["visual_tokens"] == 2 * tokens_per_frame(0.2)


def test_multipart_upload(http, media_dir):
    files = {"file": ("clip.mp4", (media_dir / "clip.mp4").read_bytes(), "video/mp4")}
    data = {"prompt": "Describe the video in detail.", "num_frames": "2", "token_kept_ratio": "0.2",
            "max_tokens": "6"}
    r = http.post("/v1/captions", files=files, data=data)
    assert r.status_code == 200, r.text
    check_caption(r.json(), "video", 2, 0.2)


def test_multipart_upload_streaming(http, media_dir):
    files = {"file": ("still.jpg", (media_dir / "still.jpg").read_bytes(), "image/jpeg")}
    r = http.post("/v1/captions", files=files, data={"stream": "true", "max_tokens": "3"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert sse_payloads(r.text)[-1] == "[DONE]"


# --- the README's curl commands, run as written (host, key and file paths substituted) ---------------------

README_CURL = {  # as in the README, with $BASE, $KEY and $CLIP substituted
    "caption-upload": """curl -s $BASE/v1/captions -H "Authorization: Bearer $KEY" \\
  -F file=@$CLIP -F num_frames=2 -F token_kept_ratio=0.2 -F max_tokens=8""",
    "caption-url": """curl -s $BASE/v1/captions -H "Authorization: Bearer $KEY" \\
  -H "Content-Type: application/json" \\
  -d '{"url": "file://$CLIP", "num_frames": 2, "token_kept_ratio": 0.2, "max_tokens": 8}'""",
    "chat": """curl -s $BASE/v1/chat/completions -H "Authorization: Bearer $KEY" \\
  -H "Content-Type: application/json" -d '{
    "model": "auroracap", "max_tokens": 8, "token_kept_ratio": 0.2, "num_frames": 2,
    "messages": [{"role": "user", "content": [
      {"type": "video_url", "video_url": {"url": "file://$CLIP"}},
      {"type": "text", "text": "Describe the video in detail."}]}]}'""",
    "chat-stream": """curl -sN $BASE/v1/chat/completions -H "Authorization: Bearer $KEY" \\
  -H "Content-Type: application/json" -d '{
    "model": "auroracap", "max_tokens": 8, "stream": true, "stream_options": {"include_usage": true},
    "num_frames": 2, "messages": [{"role": "user", "content": [
      {"type": "video_url", "video_url": {"url": "file://$CLIP"}},
      {"type": "text", "text": "Describe the video in detail."}]}]}'""",
    "models": 'curl -s $BASE/v1/models -H "Authorization: Bearer $KEY"',
    "ready": "curl -s $BASE/ready",
}


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("name", list(README_CURL))
def test_readme_curl(name, server, media_dir):
    command = Template(README_CURL[name]).substitute(BASE=server.base, KEY=API_KEY, CLIP=media_dir / "clip.mp4")
    out = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    if name.startswith("caption"):
        check_caption(json.loads(out.stdout), "video", 2, 0.2)
    elif name == "chat":
        validate("CreateChatCompletionResponse", json.loads(out.stdout))
    elif name == "chat-stream":
        payloads = sse_payloads(out.stdout)
        assert payloads[-1] == "[DONE]"
        for p in payloads[:-1]:
            validate("CreateChatCompletionStreamResponse", json.loads(p))
    elif name == "models":
        validate("ListModelsResponse", json.loads(out.stdout))
    else:
        assert json.loads(out.stdout) == {"status": "ready"}


def test_num_frames_reports_the_frames_used(http, media_dir):
    r = http.post("/v1/captions", json={"url": f"file://{media_dir / 'short.mp4'}", "num_frames": 8,
                                        "token_kept_ratio": 0.2, "max_tokens": 2})
    assert r.status_code == 200, r.text
    check_caption(r.json(), "video", 3, 0.2)  # the clip has 3 frames
