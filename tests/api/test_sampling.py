"""Frame sampling by count, rate and window over HTTP, on the real server and the real decoder.

``indexed.mp4`` is 5.000 s at 30 fps (frame i at i/30 s); the server allows 16 frames a video. The frames the
engine reports (``usage.frames``, the caption's ``num_frames``) must be the README's rule across its corners,
the visual span must follow them, and the same clip under another window or rule must never reuse a span.
Which frames a decoder returns for a rule is tested by index in tests/media/test_windows.py; here, that every
place a request may put an option reaches that rule.
"""

from __future__ import annotations

import pytest

from aurora_serve.media.sampling import Sampling, plan_frames
from aurora_serve.model.token_count import tokens_per_frame
from tests.api.conftest import MAX_FRAMES
from tests.api.schemas import validate

pytestmark = pytest.mark.engine
RHO = 0.2
TIMES = [i / 30 for i in range(150)]


def chat_body(media_dir, part: dict | None = None, **top) -> dict:
    video = {"url": f"file://{media_dir / 'indexed.mp4'}", **(part or {})}
    return {"model": "auroracap", "max_tokens": 2, "token_kept_ratio": RHO, **top,
            "messages": [{"role": "user", "content": [{"type": "video_url", "video_url": video},
                                                      {"type": "text", "text": "Describe."}]}]}


def frames_of(http, body: dict) -> int:
    r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    validate("CreateChatCompletionResponse", r.json())
    usage = r.json()["usage"]
    [frames] = usage["frames"]
    assert usage["visual_tokens"] == usage["prompt_tokens_details"]["video_tokens"] == frames * tokens_per_frame(RHO)
    return frames


@pytest.mark.parametrize("top, part, expected", [
    ({}, {}, 4),  # the server's default count
    ({"num_frames": 2}, {}, 2),
    ({}, {"num_frames": 5, "start": 4.9, "end": 99.0}, 3),  # the window at the end; its end past the end
    ({}, {"fps": 2.0, "start": 1.0, "end": 3.0}, 4),  # 2 fps x 2 s
    ({"fps": 2.0, "max_frames": 3}, {}, 3),  # the cap binds: 10 wanted
    ({}, {"fps": 60.0, "start": 4.85}, 4),  # above the clip's own 30 fps: every frame of the window (9 wanted)
    ({}, {"fps": 0.1}, 1),  # 0.5 rounds half up to 1
    ({}, {"fps": 0.05}, 1),  # 0.25 rounds to 0: clamped to one frame
    ({"num_frames": 3, "fps": 30.0}, {}, 3),  # num_frames and fps together: num_frames wins
    ({"num_frames": 8}, {"fps": 1.0}, 5),  # a part's rate replaces the request's count
    ({"fps": 1.0}, {"num_frames": 2}, 2),  # ...and a part's count the request's rate
    ({"fps": 2.0, "start": 1.0, "end": 2.0}, {"end": 4.0}, 6),  # window keys win one by one: 2 fps x [1, 4)
    ({}, {"max_frames": 2}, 2),  # SGLang's video_url.max_frames alone caps the default count
    ({"media_io_kwargs": {"video": {"fps": 1}}, "start": 2.0}, {}, 3),  # vLLM's spelling
    ({"mm_processor_kwargs": {"fps": 2, "max_frames": 4}}, {}, 4),  # the HF processors' spelling
])
def test_frames_sampled_follow_the_rule(http, media_dir, top, part, expected):
    assert frames_of(http, chat_body(media_dir, part, **top)) == expected


def test_the_rule_table_matches_the_one_sampler():
    """The expectations above are the sampler's own answers (so the HTTP test checks the plumbing, not a copy)."""
    for sampling, expected in [(Sampling(num_frames=5, start=4.9, end=99.0), 3),
                               (Sampling(fps=2.0, max_frames=16, start=1.0, end=3.0), 4),
                               (Sampling(fps=60.0, max_frames=16, start=4.85), 4),
                               (Sampling(fps=10.0, max_frames=MAX_FRAMES), MAX_FRAMES),  # the server's cap binds
                               (Sampling(fps=0.05, max_frames=16), 1)]:
        assert len(plan_frames(TIMES, sampling)) == expected


def test_captions_take_the_same_options_as_json_and_as_form_fields(http, media_dir):
    clip = media_dir / "indexed.mp4"
    r = http.post("/v1/captions", json={"url": f"file://{clip}", "fps": 2, "start": 1, "end": 2.5, "max_tokens": 2,
                                        "token_kept_ratio": RHO})
    assert r.status_code == 200, r.text
    assert r.json()["num_frames"] == 3 and r.json()["usage"]["frames"] == [3]  # 2 fps x 1.5 s
    form = {"fps": "4", "max_frames": "5", "start": "3", "max_tokens": "2", "token_kept_ratio": str(RHO)}
    r = http.post("/v1/captions", files={"file": ("indexed.mp4", clip.read_bytes(), "video/mp4")}, data=form)
    assert r.status_code == 200, r.text
    assert r.json()["num_frames"] == 5 and r.json()["usage"]["visual_tokens"] == 5 * tokens_per_frame(RHO)


def test_usage_frames_are_per_item_in_request_order(http, media_dir):
    body = chat_body(media_dir, {"num_frames": 3})
    still = {"type": "image_url", "image_url": {"url": f"file://{media_dir / 'still.jpg'}"}}
    short = {"type": "video_url", "video_url": {"url": f"file://{media_dir / 'short.mp4'}", "num_frames": 8}}
    body["messages"][0]["content"][:0] = [still, short]
    usage = http.post("/v1/chat/completions", json=body).json()["usage"]
    assert usage["frames"] == [1, 3, 3]  # the image; short.mp4 has only 3 frames; indexed.mp4 at num_frames=3
    assert usage["prompt_tokens_details"]["image_tokens"] == tokens_per_frame(RHO)
    assert usage["prompt_tokens_details"]["video_tokens"] == 6 * tokens_per_frame(RHO)


def test_another_window_or_rule_never_reuses_the_visual_span(http, media_dir):
    def cached(part: dict) -> tuple[int, int]:
        usage = http.post("/v1/chat/completions", json=chat_body(media_dir, part)).json()["usage"]
        return usage["prompt_tokens_details"]["cached_tokens"], usage["visual_tokens"]

    first = {"num_frames": 3, "start": 0.0, "end": 1.0}
    cached(first)
    again, visual = cached(first)
    assert again >= visual  # the same window: the span is served from the radix cache
    for other in ({"num_frames": 3, "start": 1.0, "end": 2.0}, {"num_frames": 3, "start": 0.0, "end": 1.5},
                  {"fps": 3.0, "start": 0.0, "end": 1.0}):  # the last samples 3 frames too, by another rule
        hit, visual = cached(other)
        assert visual == 3 * tokens_per_frame(RHO) and hit < 32, (other, hit)  # at most the text before the video


@pytest.mark.parametrize("top, part, param, words", [
    ({}, {"start": 5.0}, "start", "duration is 5.000 s"),
    ({"start": 7.5, "end": 9.0}, {}, "start", "duration is 5.000 s"),
    ({}, {"start": 3.0, "end": 2.0}, "messages.0.content.0.video_url.end", "must be after start"),
    ({}, {"fps": 1.0, "max_frames": 17}, "messages.0.content.0.video_url.max_frames", "[1, 16]"),
    ({"media_io_kwargs": {"video": {"fps": 0}}}, {}, "media_io_kwargs.video.fps", "> 0"),
    ({"num_frames": 4, "mm_processor_kwargs": {"num_frames": 5}}, {}, "mm_processor_kwargs.num_frames", "conflicts"),
])
def test_refusals_name_the_field(http, media_dir, top, part, param, words):
    r = http.post("/v1/chat/completions", json=chat_body(media_dir, part, **top))
    assert r.status_code == 400, r.text
    validate("ErrorResponse", r.json())
    assert r.json()["error"]["param"] == param and words in r.json()["error"]["message"], r.json()
