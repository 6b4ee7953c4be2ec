"""What every decoder shares about its input: the source type, opening it, and the size limits.

A source is the file's bytes or a path to it. The limits apply per image and per video frame: ``MAX_SIDE``
always, and a pixel count (``MAX_PIXELS`` unless the request's budget sets its own, ``--max-frame-pixels``).
"""

from __future__ import annotations

import io
import os

from aurora_serve.errors import MediaError, MediaTooLargeError

Source = bytes | bytearray | memoryview | str | os.PathLike
MAX_SIDE = 8192  # px per side, images and video frames
MAX_PIXELS = 64_000_000  # per image / frame; also stops decompression bombs before the pixels are allocated


def file_arg(source: Source):
    """What PyAV / Pillow / decord open: a file object over bytes, or a path that must exist."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(source)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise MediaError(f"media file not found: {path}")
        return path
    raise TypeError(f"media source must be bytes or a path, got {type(source).__name__}")


def check_size(width: int, height: int, *, what: str, max_pixels: int | None = None) -> None:
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    if width > MAX_SIDE or height > MAX_SIDE or width * height > max_pixels:
        raise MediaTooLargeError(
            f"{what} is {width}x{height}; the limits are {MAX_SIDE} px per side and "
            f"{max_pixels / 1_000_000:g} Mpx per frame"
        )
