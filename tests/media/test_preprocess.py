"""Tests for aurora_serve.media.preprocess against transformers' CLIP image processors.

Tolerances (observed with transformers 5.19, Pillow 13, torchvision 0.28):

- ``CLIPImageProcessorPil`` (the Pillow path upstream ran): 0, bit-identical (same resize, same casts).
- ``CLIPImageProcessor`` (transformers 5's default, torchvision): max <= 2 uint8 levels (0.030 after
  normalisation), mean < 1e-3; torchvision's antialiased bicubic rounds differently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aurora_serve.media.decode import decode_image, decode_video
from aurora_serve.media.preprocess import CLIP_MEAN, CLIP_STD, clip_preprocess, resized_size

SHARED_MEDIA = Path(__file__).resolve().parents[2] / ".." / "shared" / "media"
LEVEL = 1 / 255 / min(CLIP_STD)  # one uint8 step after normalisation (≈ 0.0150)


def processor(kind: str, size: int = 378):
    """transformers' CLIP processor configured as AuroraCap's inference.py builds it (no download)."""
    import transformers

    cls = transformers.CLIPImageProcessorPil if kind == "pil" else transformers.CLIPImageProcessor
    return cls(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}, resample=3,
        do_resize=True, do_center_crop=True, do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
        image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD), do_convert_rgb=True,
    )


def reference(frames: np.ndarray, kind: str = "pil", size: int = 378) -> torch.Tensor:
    # channels_last explicitly: transformers guesses wrong for tiny frames such as 1x3.
    out = processor(kind, size)(list(frames), return_tensors="pt", input_data_format="channels_last")
    return out["pixel_values"]


def random_frames(f: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus noise: exercises the bicubic filter's overshoot and clipping."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = (xx * 255 // max(1, w - 1) + yy * 128 // max(1, h - 1))[None, :, :, None]
    noise = rng.integers(-40, 40, (f, h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    "h, w, expected",
    [(1024, 576, (672, 378)), (720, 1280, (378, 672)), (667, 1000, (378, 566)), (500, 500, (378, 378)),
     (30, 50, (378, 630)), (379, 377, (380, 378))],
)
def test_resized_size_truncates_the_long_edge(h, w, expected):
    assert resized_size(h, w, 378) == expected


@pytest.mark.parametrize(
    "f, h, w",
    [(2, 1024, 576), (2, 720, 1280), (1, 500, 500), (1, 378, 600), (3, 30, 50), (1, 379, 377), (1, 1, 3)],
    ids=["portrait", "landscape", "square", "short-edge-exact", "upscale", "odd", "one-pixel-high"],
)
def test_bit_identical_to_the_pil_clip_processor(f, h, w):
    frames = random_frames(f, h, w, seed=h * w)
    ours = clip_preprocess(frames)
    assert ours.shape == (f, 3, 378, 378) and ours.dtype == torch.float32
    assert torch.equal(ours, reference(frames))


def test_other_sizes_match_too():
    frames = random_frames(2, 240, 320)
    assert torch.equal(clip_preprocess(frames, size=224), reference(frames, size=224))


def test_close_to_the_transformers5_default_torchvision_processor():
    pytest.importorskip("torchvision", reason="torchvision absent: transformers 5 then defaults to the PIL path")
    frames = random_frames(2, 720, 1280, seed=3)
    diff = (clip_preprocess(frames) - reference(frames, kind="torchvision")).abs()
    assert diff.max().item() <= 2 * LEVEL + 1e-6
    assert diff.mean().item() < 1e-3


def test_input_validation_and_empty_batch():
    with pytest.raises(ValueError, match="uint8"):
        clip_preprocess(np.zeros((1, 10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="F, H, W, 3"):
        clip_preprocess(np.zeros((10, 10, 3), np.uint8))
    assert clip_preprocess(np.zeros((0, 10, 10, 3), np.uint8)).shape == (0, 3, 378, 378)


def test_constant_frame_normalises_to_the_expected_value():
    frames = np.full((1, 400, 600, 3), 255, np.uint8)
    expected = (1 - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)
    out = clip_preprocess(frames)
    assert torch.allclose(out[0, :, 100, 100], torch.from_numpy(expected))


# --- the shared sample media ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def media() -> Path:
    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"sample media not available at {SHARED_MEDIA.resolve()} (no ../shared beside the checkout)")
    return SHARED_MEDIA


@pytest.mark.parametrize("name", ["extreme_ironing.jpg", "waterview.jpg", "cat.jpeg", "dog.jpeg"])
def test_shared_images(media, name):
    frames = decode_image(media / name)
    ours = clip_preprocess(frames)
    assert ours.shape == (1, 3, 378, 378)
    assert torch.equal(ours, reference(frames))


@pytest.mark.parametrize("name", ["jobs.mp4", "xU25MMA2N4aVtYay.mp4"])
def test_shared_video_frames(media, name):
    frames = decode_video(media / name, 8)
    ours = clip_preprocess(frames)
    assert ours.shape == (8, 3, 378, 378)  # README: resize to 378x672 / 672x378, then crop
    assert torch.equal(ours, reference(frames))
