"""Oracle parity: the SGLang path gives the same greedy tokens as plain PyTorch with upstream semantics."""

from __future__ import annotations

import pytest

from aurora_serve.engine import GenerateRequest
from aurora_serve.media.decode import load_frames
from aurora_serve.media.preprocess import clip_preprocess
from aurora_serve.model.token_count import tokens_per_frame
from tests.support.clips import make_image, make_video
from tests.oracle import Oracle

MAX_NEW = 12
PROMPT = "Describe the video in detail."


@pytest.fixture(scope="module")
def oracle(tiny_xtuner):
    return Oracle(tiny_xtuner)


def upstream_text(frames: int, prompt: str) -> str:
    """inference.py: one <image> per frame joined by a space, newline, prompt, Vicuna wrapper."""
    return "USER: " + " ".join(["<image>"] * frames) + "\n" + prompt + " ASSISTANT:"


def sglang_prompt(engine, kinds: list[str], prompt: str) -> str:
    parts = [{"type": "video_url" if k == "video" else "image_url"} for k in kinds] + [{"type": "text", "text": prompt}]
    return engine.tokenizer.apply_chat_template([{"role": "user", "content": parts}], tokenize=False, add_generation_prompt=True)


def greedy(max_new=MAX_NEW):
    return {"temperature": 0.0, "max_new_tokens": max_new}


@pytest.mark.parametrize("rho", [0.2, 1.0])
def test_video_8_frames(engine, run, oracle, tmp_path, rho):
    path = tmp_path / "clip.mp4"
    make_video(path, frames=30, seed=1)
    out = run(engine.generate(GenerateRequest(
        prompt=sglang_prompt(engine, ["video"], PROMPT),
        videos=[{"data": str(path), "token_kept_ratio": rho, "num_frames": 8}], sampling_params=greedy())))
    pixels = clip_preprocess(load_frames(str(path), "video", 8))
    ids, prompt_len = oracle.generate(upstream_text(8, PROMPT), [(pixels, rho)], MAX_NEW)
    assert out["meta_info"]["video_tokens"] == 8 * tokens_per_frame(rho)
    assert out["meta_info"]["prompt_tokens"] == prompt_len
    assert out["output_ids"] == ids


@pytest.mark.parametrize("rho", [0.2, 1.0])
def test_image(engine, run, oracle, tmp_path, rho):
    data = make_image(None, seed=2)
    out = run(engine.generate(GenerateRequest(
        prompt=sglang_prompt(engine, ["image"], "Describe the image in detail."),
        images=[{"data": data, "token_kept_ratio": rho}], sampling_params=greedy())))
    pixels = clip_preprocess(load_frames(data, "image", 1))
    ids, prompt_len = oracle.generate(upstream_text(1, "Describe the image in detail."), [(pixels, rho)], MAX_NEW)
    assert out["meta_info"]["image_tokens"] == tokens_per_frame(rho)
    assert out["meta_info"]["prompt_tokens"] == prompt_len
    assert out["output_ids"] == ids


def test_two_videos_with_different_ratios_in_one_request(engine, run, oracle):
    """Both items reach get_video_feature together: the tower groups frames by r."""
    a, b = make_video(None, frames=12, seed=3), make_video(None, frames=12, seed=4)
    out = run(engine.generate(GenerateRequest(
        prompt=sglang_prompt(engine, ["video", "video"], PROMPT),
        videos=[{"data": a, "token_kept_ratio": 0.2, "num_frames": 3}, {"data": b, "token_kept_ratio": 0.9, "num_frames": 2}],
        sampling_params=greedy())))
    pa, pb = clip_preprocess(load_frames(a, "video", 3)), clip_preprocess(load_frames(b, "video", 2))
    text = "USER: " + " ".join(["<image>"] * 5) + "\n" + PROMPT + " ASSISTANT:"
    ids, prompt_len = oracle.generate(text, [(pa, 0.2), (pb, 0.9)], MAX_NEW)
    assert out["meta_info"]["video_tokens"] == 3 * tokens_per_frame(0.2) + 2 * tokens_per_frame(0.9)
    assert out["meta_info"]["prompt_tokens"] == prompt_len
    assert out["output_ids"] == ids


def test_oracle_same_weights_both_layouts(tiny_xtuner, tiny_hf, oracle):
    hf = Oracle(tiny_hf)
    pixels = clip_preprocess(load_frames(make_video(None, frames=10, seed=5), "video", 4))
    text = upstream_text(4, PROMPT)
    assert hf.generate(text, [(pixels, 0.5)], MAX_NEW) == oracle.generate(text, [(pixels, 0.5)], MAX_NEW)
