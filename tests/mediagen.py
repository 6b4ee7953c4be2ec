"""Test media made here with PyAV and Pillow: varied, seeded content so token merging has work to do."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
from PIL import Image


def _frame(rng: np.random.Generator, i: int, w: int, h: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    base = rng.integers(0, 256, 3)
    img = np.stack([(xx * (c + 1) + yy * (3 - c) + 9 * i + base[c]) % 256 for c in range(3)], axis=-1)
    x0, y0 = (i * 7) % max(1, w - w // 4), (i * 5) % max(1, h - h // 4)
    img[y0 : y0 + h // 4, x0 : x0 + w // 4] = rng.integers(0, 256, 3)  # a moving block
    return img.astype(np.uint8)


def make_video(path: Path | None, frames: int = 24, w: int = 160, h: int = 120, seed: int = 0, fps: int = 24) -> bytes:
    """An H.264 MP4 (mpeg4 if libx264 is missing); written to ``path`` when given; returns the bytes."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        try:
            stream = out.add_stream("libx264", rate=fps)
        except Exception:  # codec availability depends on the PyAV build
            stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(_frame(rng, i, w, h), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def make_image(path: Path | None, w: int = 200, h: int = 150, seed: int = 0, fmt: str = "JPEG") -> bytes:
    data_io = io.BytesIO()
    Image.fromarray(_frame(np.random.default_rng(seed), seed, w, h)).save(data_io, format=fmt)
    data = data_io.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data
