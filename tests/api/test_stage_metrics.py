"""Stage metrics by default, through the real server: every histogram moves by exactly the count of the work
it measures (media prepared in the server's process; vision, merge and prefill in the scheduler's)."""

from __future__ import annotations

import pytest

from tests.support.clips import data_url, make_video
from tests.support.server import metric_values

pytestmark = pytest.mark.engine

COUNTS = {
    "decode": 'aurora_media_decode_seconds_count{kind="video"}',
    "preprocess": 'aurora_media_preprocess_seconds_count{kind="video"}',
    "frames": 'aurora_media_frames_decoded_count{kind="video"}',
    "handoff": 'aurora_media_handoff_bytes_count{kind="video"}',
    "handoff_bytes": 'aurora_media_handoff_bytes_sum{kind="video"}',
    "misses": 'aurora_media_cache_requests_total{result="miss"}',
    "hits": 'aurora_media_cache_requests_total{result="hit"}',
    "vision": "aurora_vision_seconds_count",
    "merge": "aurora_merge_seconds_count",
    "prefill": "aurora_prefill_seconds_count",
}


def snapshot(http) -> dict[str, float]:
    text = http.get("/metrics").text
    out = {}
    for name, series in COUNTS.items():
        lines = [line for line in text.splitlines() if line.startswith(series + " ")]
        out[name] = float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0
    return out


def chat(http, content, ratio=0.2) -> None:
    r = http.post("/v1/chat/completions", json={"model": "auroracap", "max_tokens": 2, "num_frames": 2,
                                                "token_kept_ratio": ratio,
                                                "messages": [{"role": "user", "content": content}]})
    assert r.status_code == 200, r.text


def video(clip: bytes) -> list[dict]:
    return [{"type": "video_url", "video_url": {"url": data_url(clip)}}, {"type": "text", "text": "Describe."}]


def test_each_stage_histogram_counts_its_work(http):
    a, b = make_video(None, frames=10, seed=71), make_video(None, frames=10, seed=72)
    before = snapshot(http)
    chat(http, video(a))  # decoded, encoded, prefilled
    chat(http, video(b))  # decoded, encoded, prefilled
    chat(http, video(a), ratio=0.5)  # pixels from the cache; another ratio: encoded and prefilled again
    chat(http, "Describe a video.")  # text: prefilled only
    after = snapshot(http)
    delta = {name: after[name] - before[name] for name in COUNTS}
    assert delta == {"decode": 2, "preprocess": 2, "frames": 2, "handoff": 2, "handoff_bytes": 2 * 2 * 378 * 378 * 3,
                     "misses": 2, "hits": 1, "vision": 3, "merge": 3, "prefill": 4}, delta
    assert sum(metric_values(http.get("/metrics").text, "aurora_vision_seconds_sum")) > 0
