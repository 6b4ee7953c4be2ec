"""Oracle parity: the SGLang engine (tiny xtuner checkpoint) gives the same greedy tokens as the transformers
API (``tests/oracle.py``, ``aurora_serve.hf``) with upstream semantics, loaded from either layout (the HF
layout holds the same weights)."""

from __future__ import annotations

import pytest

from aurora_serve.engine import GenerateRequest
from aurora_serve.media.decode import load_frames
from aurora_serve.model.token_count import tokens_per_frame
from tests.support.clips import make_image, make_video
from tests.oracle import Oracle

MAX_NEW = 12
PROMPT = "Describe the video in detail."


@pytest.fixture(scope="module")
def oracles(tiny_xtuner, tiny_hf):
    return {"xtuner": Oracle(tiny_xtuner), "hf": Oracle(tiny_hf)}


def sglang_prompt(engine, kinds: list[str], prompt: str) -> str:
    parts = [{"type": "video_url" if k == "video" else "image_url"} for k in kinds] + [{"type": "text", "text": prompt}]
    return engine.tokenizer.apply_chat_template([{"role": "user", "content": parts}], tokenize=False, add_generation_prompt=True)


def greedy(max_new=MAX_NEW):
    return {"temperature": 0.0, "max_new_tokens": max_new}


@pytest.mark.parametrize("layout", ["xtuner", "hf"])
@pytest.mark.parametrize("rho", [0.2, 1.0])
def test_video_8_frames(engine, run, oracles, tmp_path, rho, layout):
    path = tmp_path / "clip.mp4"
    make_video(path, frames=30, seed=1)
    out = run(engine.generate(GenerateRequest(
        prompt=sglang_prompt(engine, ["video"], PROMPT),
        videos=[{"data": str(path), "token_kept_ratio": rho, "num_frames": 8}], sampling_params=greedy())))
    frames = load_frames(str(path), "video", 8)
    ids, prompt_len = oracles[layout].generate(PROMPT, [("video", frames, rho)], MAX_NEW)
    assert out["meta_info"]["video_tokens"] == 8 * tokens_per_frame(rho)
    assert out["meta_info"]["prompt_tokens"] == prompt_len
    assert out["output_ids"] == ids


@pytest.mark.parametrize("layout", ["xtuner", "hf"])
@pytest.mark.parametrize("rho", [0.2, 1.0])
def test_image(engine, run, oracles, rho, layout):
    data = make_image(None, seed=2)
    out = run(engine.generate(GenerateRequest(
        prompt=sglang_prompt(engine, ["image"], "Describe the image in detail."),
        images=[{"data": data, "token_kept_ratio": rho}], sampling_params=greedy())))
    frames = load_frames(data, "image", 1)
    ids, prompt_len = oracles[layout].generate("Describe the image in detail.", [("image", frames, rho)], MAX_NEW)
    assert out["meta_info"]["image_tokens"] == tokens_per_frame(rho)
    assert out["meta_info"]["prompt_tokens"] == prompt_len
    assert out["output_ids"] == ids


def test_two_videos_with_different_ratios_in_one_request(engine, run, oracles):
    """Both items reach get_video_feature together: the tower groups frames by r."""
    a, b = make_video(None, frames=12, seed=3), make_video(None, frames=12, seed=4)
    out = run(engine.generate(GenerateRequest(
        prompt=sglang_prompt(engine, ["video", "video"], PROMPT),
        videos=[{"data": a, "token_kept_ratio": 0.2, "num_frames": 3}, {"data": b, "token_kept_ratio": 0.9, "num_frames": 2}],
        sampling_params=greedy())))
    fa, fb = load_frames(a, "video", 3), load_frames(b, "video", 2)
    ids, prompt_len = oracles["xtuner"].generate(PROMPT, [("video", fa, 0.2), ("video", fb, 0.9)], MAX_NEW)
    assert out["meta_info"]["video_tokens"] == 3 * tokens_per_frame(0.2) + 2 * tokens_per_frame(0.9)
    assert out["meta_info"]["prompt_tokens"] == prompt_len
    assert out["output_ids"] == ids


def test_oracle_same_weights_both_layouts(oracles):
    frames = load_frames(make_video(None, frames=10, seed=5), "video", 4)
    media = [("video", frames, 0.5)]
    assert oracles["hf"].generate(PROMPT, media, MAX_NEW) == oracles["xtuner"].generate(PROMPT, media, MAX_NEW)
