"""CLIP preprocessing of RGB frames, as AuroraCap's reference pipeline does it.

Legend: F frames, H/W input height/width, S output side (378 for AuroraCap).

Steps (``../shared/reference/auroracap.md`` §6): resize so the short edge is S and the long edge is
``int(S * long / short)`` (truncated), with Pillow's antialiased bicubic filter; center crop S x S at
``top = (H' - S) // 2, left = (W' - S) // 2``; scale by 1/255; normalise with OpenAI CLIP's mean/std. The
reference built a transformers 4.x ``CLIPImageProcessor``, whose only backend was Pillow + NumPy. In
transformers 5 (5.19 checked) ``CLIPImageProcessor`` is the torchvision backend, and ``AutoImageProcessor``
picks it whenever torchvision is installed; the Pillow path is ``CLIPImageProcessorPil`` (or
``backend="pil"``). The torchvision path differs by up to 2 uint8 levels after resizing (max |diff| 0.030
after normalisation, mean < 1e-4 on the sample media). This module reproduces the Pillow path bit for bit,
including its float64 scaling before the float32 cast. Casting to the model's dtype (fp16) is the caller's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch  # imported where tensors are made: media workers decode and crop without torch
    from PIL import Image  # imported where frames are cropped: the model normalises crops without Pillow

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def resized_size(height: int, width: int, size: int) -> tuple[int, int]:
    """``(H', W')`` after the shortest-edge resize: the short edge becomes ``size``, the long one is truncated.

    576x1024 (WxH) → (672, 378); 1280x720 → (378, 672); a square stays square.
    """
    if width <= height:
        return int(size * height / width), size
    return size, int(size * width / height)


def clip_crop(frame: "np.ndarray | Image.Image", size: int = 378) -> np.ndarray:
    """One frame's resize + center crop: ``(S, S, 3)`` uint8, the pixels the model normalises.

    Takes the decoder's ``(H, W, 3)`` uint8 RGB or a Pillow RGB image (an image is resized as it is, without
    a full-resolution copy). Pillow resizes the whole frame (its bicubic filter reads beyond the crop window),
    then the crop is taken."""
    from PIL import Image

    image = frame if isinstance(frame, Image.Image) else Image.fromarray(frame)
    width, height = image.size
    new_h, new_w = resized_size(height, width, size)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return np.asarray(image.resize((new_w, new_h), resample=Image.Resampling.BICUBIC))[top : top + size, left : left + size]


def normalisation_table(mean=CLIP_MEAN, std=CLIP_STD) -> np.ndarray:
    """``(3, 256)`` float32: the normalised value of every uint8 level per channel.

    A uint8 pixel has 256 values, so the per-channel arithmetic is a table, computed with the same operations
    as transformers' rescale + normalise (float64 scale, float32 cast, float32 subtract and divide): looking
    a level up gives bit-identical output, about 6x cheaper than the arithmetic on every pixel, and the same
    table on the model's device normalises there (``model.vision.normalise_crops``)."""
    levels = (np.arange(256, dtype=np.float64) * (1 / 255)).astype(np.float32)
    return (levels[None, :] - np.asarray(mean, dtype=np.float32)[:, None]) / np.asarray(std, dtype=np.float32)[:, None]


def normalise(crops: np.ndarray, mean=CLIP_MEAN, std=CLIP_STD) -> "torch.Tensor":
    """``(F, S, S, 3)`` uint8 crops → ``(F, 3, S, S)`` float32 CLIP pixel values."""
    table = normalisation_table(mean, std)
    out = np.empty((crops.shape[0], 3, *crops.shape[1:3]), dtype=np.float32)
    for c in range(3):
        np.take(table[c], crops[..., c], out=out[:, c], mode="clip")  # uint8 indices: "clip" never clips
    import torch

    return torch.from_numpy(out)


def clip_preprocess(
    frames: np.ndarray,
    size: int = 378,
    mean: tuple[float, float, float] = CLIP_MEAN,
    std: tuple[float, float, float] = CLIP_STD,
) -> "torch.Tensor":
    """CLIP pixel values for a stack of frames: ``clip_crop`` each, then ``normalise``.

    Args:
        frames: ``(F, H, W, 3)`` uint8 RGB (``decode_video`` / ``decode_image`` output).
        size: output side S; the short edge is resized to S, then an S x S center crop is taken.
        mean, std: per-channel normalisation (OpenAI CLIP by default).

    Returns:
        ``(F, 3, S, S)`` float32, matching transformers' ``CLIPImageProcessorPil`` with
        ``size={"shortest_edge": S}, crop_size={"height": S, "width": S}, resample=3``.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (F, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    crops = np.empty((frames.shape[0], size, size, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        crops[i] = clip_crop(frame, size)
    return normalise(crops, mean, std)
