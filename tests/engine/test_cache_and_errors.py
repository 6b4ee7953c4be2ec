"""Radix/embedding cache identity includes ρ and F; bad media gives typed errors; the engine keeps serving."""

from __future__ import annotations

import asyncio

import pytest

from aurora_serve.engine import GenerateRequest
from aurora_serve.errors import InvalidRequestError, MediaError
from aurora_serve.model.token_count import tokens_per_frame
from tests.engine.test_parity import greedy, sglang_prompt
from tests.support.clips import make_video

PROMPT = "Describe the video in detail."


def video_req(engine, data, rho, frames=4, max_new=6):
    return GenerateRequest(prompt=sglang_prompt(engine, ["video"], PROMPT),
                           videos=[{"data": data, "token_kept_ratio": rho, "num_frames": frames}],
                           sampling_params=greedy(max_new))


def prefix_len(engine) -> int:
    """Text tokens before the first visual span ("USER: " with BOS)."""
    return len(engine.tokenizer("USER: ", add_special_tokens=True).input_ids)


def test_same_video_same_ratio_reuses_the_visual_span(engine, run):
    data = make_video(None, frames=20, seed=11)
    first = run(engine.generate(video_req(engine, data, 0.3)))
    second = run(engine.generate(video_req(engine, data, 0.3)))
    visual = 4 * tokens_per_frame(0.3)
    assert first["meta_info"]["cached_tokens"] <= prefix_len(engine)
    # Everything up to and including the last visual token comes from the cache.
    assert second["meta_info"]["cached_tokens"] >= prefix_len(engine) + visual
    assert second["output_ids"] == first["output_ids"]


def test_same_video_other_ratio_never_reuses_the_visual_span(engine, run):
    data = make_video(None, frames=20, seed=12)
    a = run(engine.generate(video_req(engine, data, 0.5)))
    b = run(engine.generate(video_req(engine, data, 0.2)))
    assert a["meta_info"]["video_tokens"] == 4 * tokens_per_frame(0.5)
    assert b["meta_info"]["video_tokens"] == 4 * tokens_per_frame(0.2)
    assert b["meta_info"]["cached_tokens"] <= prefix_len(engine)
    # And a fresh engine-level view: b equals b computed after a flush (no stale embedding).
    engine.engine.flush_cache()
    b_fresh = run(engine.generate(video_req(engine, data, 0.2)))
    assert b_fresh["output_ids"] == b["output_ids"]


def test_same_video_other_frame_count_never_reuses(engine, run):
    data = make_video(None, frames=20, seed=13)
    run(engine.generate(video_req(engine, data, 0.5, frames=4)))
    c = run(engine.generate(video_req(engine, data, 0.5, frames=3)))
    assert c["meta_info"]["video_tokens"] == 3 * tokens_per_frame(0.5)
    assert c["meta_info"]["cached_tokens"] <= prefix_len(engine)


def test_concurrent_mixed_ratio_requests_match_solo_runs(engine, run):
    vids = [make_video(None, frames=16, seed=20 + i) for i in range(3)]
    ratios = [0.1, 0.5, 1.0]
    reqs = [video_req(engine, v, r, frames=3, max_new=8) for v, r in zip(vids, ratios)]

    async def together():
        return await asyncio.gather(*(engine.generate(r) for r in reqs))

    engine.engine.flush_cache()
    mixed = run(together())
    engine.engine.flush_cache()
    solo = [run(engine.generate(video_req(engine, v, r, frames=3, max_new=8))) for v, r in zip(vids, ratios)]
    for m, s, r in zip(mixed, solo, ratios):
        assert m["meta_info"]["video_tokens"] == 3 * tokens_per_frame(r)
        assert m["output_ids"] == s["output_ids"]


BAD_MEDIA = {
    "corrupt bytes": b"\x00\x01garbage" * 100,
    "text, not a video": b"hello, this is plain text and no video at all\n" * 20,
    "truncated mp4": make_video(None, frames=20, seed=30)[:600],
    "empty": b"",
}


@pytest.mark.parametrize("case", sorted(BAD_MEDIA))
def test_bad_media_is_a_typed_error_and_the_engine_keeps_serving(engine, run, case):
    with pytest.raises(MediaError) as err:
        run(engine.generate(video_req(engine, BAD_MEDIA[case], 0.5)))
    assert err.value.status in (400, 413, 415) and len(err.value.message) > 10
    ok = run(engine.generate(video_req(engine, make_video(None, frames=8, seed=31), 0.5, frames=2, max_new=2)))
    assert ok["meta_info"]["completion_tokens"] >= 1


def test_zero_frame_video_is_a_media_error(engine, run, tmp_path):
    import av

    path = tmp_path / "empty.mp4"
    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("mpeg4", rate=24)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
    with pytest.raises(MediaError, match="(?i)frame"):
        run(engine.generate(video_req(engine, str(path), 0.5)))


@pytest.mark.parametrize("opts,param", [({"token_kept_ratio": 0}, "token_kept_ratio"),
                                         ({"token_kept_ratio": 1.5}, "token_kept_ratio"),
                                         ({"num_frames": 0}, "num_frames"), ({"num_frames": 10**6}, "num_frames")])
def test_bad_options_are_invalid_request_errors(engine, run, opts, param):
    item = {"data": make_video(None, frames=8, seed=32), "token_kept_ratio": 0.5, "num_frames": 2, **opts}
    req = GenerateRequest(prompt=sglang_prompt(engine, ["video"], PROMPT), videos=[item], sampling_params=greedy(2))
    with pytest.raises(InvalidRequestError) as err:
        run(engine.generate(req))
    assert err.value.param == param


def test_engine_accepts_data_urls_and_rejects_bad_ones(engine, run):
    import base64

    data = make_video(None, frames=8, seed=33)
    url = "data:video/mp4;base64," + base64.b64encode(data).decode()
    as_url = run(engine.generate(video_req(engine, url, 0.5, frames=2, max_new=3)))
    as_bytes = run(engine.generate(video_req(engine, data, 0.5, frames=2, max_new=3)))
    assert as_url["output_ids"] == as_bytes["output_ids"]
    assert as_url["meta_info"]["video_tokens"] == 2 * tokens_per_frame(0.5)
    with pytest.raises(InvalidRequestError, match="base64"):
        run(engine.generate(video_req(engine, "data:video/mp4;base64,@@not-base64@@", 0.5)))


def test_same_video_other_window_or_rate_never_reuses_the_visual_span(engine, run):
    data = make_video(None, frames=48, seed=14)  # 2 s at 24 fps
    base = {"data": data, "token_kept_ratio": 0.5}
    first = GenerateRequest(prompt=sglang_prompt(engine, ["video"], PROMPT), sampling_params=greedy(2),
                            videos=[{**base, "num_frames": 3, "start": 0.0, "end": 1.0}])
    run(engine.generate(first))
    assert engine.frames_sampled(first.rid) == {"image": [], "video": [3]}
    for other in ({"num_frames": 3, "start": 1.0}, {"fps": 3.0, "max_frames": 3}, {"num_frames": 3}):
        req = GenerateRequest(prompt=first.prompt, videos=[{**base, **other}], sampling_params=greedy(2))
        out = run(engine.generate(req))
        assert out["meta_info"]["video_tokens"] == 3 * tokens_per_frame(0.5)
        assert out["meta_info"]["cached_tokens"] <= prefix_len(engine), other
        assert engine.frames_sampled(req.rid) == {"image": [], "video": [3]}
