"""Fixtures for the transformers API: the tiny checkpoints loaded through it, and decoded test media."""

from __future__ import annotations

import pytest

from aurora_serve.hf import AuroraForConditionalGeneration, AuroraProcessor
from aurora_serve.media.decode import load_frames
from tests.support.clips import make_image, make_video

VIDEO_PROMPT = "Describe the video in detail."
IMAGE_PROMPT = "Describe the image in detail."


@pytest.fixture(scope="session")
def hf_xtuner(tiny_xtuner):
    """(processor, fp32 model) of the tiny xtuner checkpoint."""
    return AuroraProcessor.from_pretrained(tiny_xtuner), AuroraForConditionalGeneration.from_pretrained(tiny_xtuner)


@pytest.fixture(scope="session")
def video8():
    """8 frames sampled from a 30-frame clip, as both the engine and the HF API get them."""
    return load_frames(make_video(None, frames=30, seed=1), "video", 8)


@pytest.fixture(scope="session")
def image1():
    return load_frames(make_image(None, seed=2), "image", 1)


def chat(processor, kinds: list[str], text: str) -> str:
    parts = [{"type": kind} for kind in kinds] + [{"type": "text", "text": text}]
    return processor.apply_chat_template([{"role": "user", "content": parts}], add_generation_prompt=True)
