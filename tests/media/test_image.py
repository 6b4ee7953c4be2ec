"""Tests for aurora_serve.media.image: modes, JPEG variants, EXIF orientation, errors, size limits."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aurora_serve.errors import MediaError, MediaTooLargeError, UnsupportedMediaError
from aurora_serve.media import source as source_mod
from aurora_serve.media.image import decode_image
from tests.support.clips import H, W, frame_index, frame_rgb, image_bytes


def test_image_modes_become_rgb():
    rgb = Image.fromarray(frame_rgb(5))
    for img, fmt in [(rgb, "PNG"), (rgb.convert("RGBA"), "PNG"), (rgb.convert("L"), "PNG"),
                     (rgb.convert("P"), "GIF"), (rgb, "WEBP"), (rgb.convert("CMYK"), "JPEG")]:
        out = decode_image(image_bytes(img, fmt))
        assert out.shape == (1, H, W, 3) and out.dtype == np.uint8, (img.mode, fmt)
    assert np.array_equal(decode_image(image_bytes(rgb, "PNG"))[0], frame_rgb(5))


@pytest.mark.parametrize(
    "save", [dict(progressive=True), dict(subsampling=0, quality=95)], ids=["progressive", "444"]
)
def test_jpeg_variants(save):
    out = decode_image(image_bytes(Image.fromarray(frame_rgb(9)), "JPEG", **save))
    assert out.shape == (1, H, W, 3) and frame_index(out[0]) == 9


def test_exif_orientation_is_applied():
    img = Image.fromarray(frame_rgb(3))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display = 90 degrees clockwise
    out = decode_image(image_bytes(img, "JPEG", exif=exif, quality=95))
    assert out.shape == (1, W, H, 3)
    assert frame_index(np.rot90(out[0], 1)) == 3  # turning back counter-clockwise restores the original


def test_bad_images():
    jpeg = image_bytes(Image.fromarray(frame_rgb(1)), "JPEG")
    with pytest.raises(MediaError, match="corrupt or truncated"):
        decode_image(jpeg[: len(jpeg) // 2])
    with pytest.raises(UnsupportedMediaError):
        decode_image(b"definitely not an image")


def test_image_size_limits(monkeypatch):
    tall = image_bytes(Image.new("RGB", (8, 8200)), "PNG")
    with pytest.raises(MediaTooLargeError, match="8x8200"):
        decode_image(tall)
    monkeypatch.setattr(source_mod, "MAX_PIXELS", 1000)
    with pytest.raises(MediaTooLargeError, match="limits are"):
        decode_image(image_bytes(Image.new("RGB", (40, 40)), "PNG"))


def test_pillow_decompression_bomb_is_too_large(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow refuses > 2x this before we look
    with pytest.raises(MediaTooLargeError):
        decode_image(image_bytes(Image.new("RGB", (20, 20)), "PNG"))
