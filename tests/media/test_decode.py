"""Tests for aurora_serve.media.decode: ``load_frames`` kind detection, ``decode_video``'s arguments, the
decord backend, and the shared sample media (README reference values).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aurora_serve.errors import MediaError, MediaTooLargeError, UnsupportedMediaError
from aurora_serve.media.decode import DecodeStats, decode_image, decode_video, load_frames, sample_indices
from tests.support.clips import H, W, decode_both, frame_index, frame_rgb, image_bytes

SHARED_MEDIA = Path(__file__).resolve().parents[2] / ".." / "shared" / "media"


# --- load_frames -----------------------------------------------------------------------------------------


def test_load_frames_detects_the_kind_from_content(clip):
    png = image_bytes(Image.fromarray(frame_rgb(7)), "PNG")
    assert load_frames(png, None, 8).shape == (1, H, W, 3)
    assert load_frames(clip, None, 8).shape == (8, H, W, 3)
    assert load_frames(clip, "video", 4).shape == (4, H, W, 3)
    assert load_frames(png, "image", 8).shape == (1, H, W, 3)
    with pytest.raises(MediaTooLargeError):
        load_frames(clip, None, 8, max_frames_total=50)
    with pytest.raises(ValueError, match="kind"):
        load_frames(png, "audio", 8)
    with pytest.raises(UnsupportedMediaError):
        load_frames(b"neither", None, 8)


def test_load_frames_ignores_misleading_file_names(clip, tmp_path):
    path = tmp_path / "really_a_video.jpg"
    path.write_bytes(clip)
    assert load_frames(path, None, 8).shape == (8, H, W, 3)


# --- decode_video's arguments ----------------------------------------------------------------------------


def test_missing_file_and_bad_arguments(clip, tmp_path):
    with pytest.raises(MediaError, match="not found"):
        decode_video(tmp_path / "nope.mp4", 8)
    with pytest.raises(TypeError):
        decode_video(12345, 8)
    with pytest.raises(ValueError, match="backend"):
        decode_video(clip, 8, backend="opencv")
    with pytest.raises(ValueError, match="num_frames"):
        decode_video(clip, 0)


# --- decord ----------------------------------------------------------------------------------------------


def test_decord_missing_is_a_clear_error(monkeypatch, clip):
    monkeypatch.setitem(sys.modules, "decord", None)  # makes `import decord` fail, installed or not
    with pytest.raises(ImportError, match=r"pip install 'aurora-serve\[decord\]'"):
        decode_video(clip, 8, backend="decord")


def test_decord_backend_samples_the_same_frames(clip):
    pytest.importorskip("decord", reason="decord is not installed (optional backend: aurora-serve[decord])")
    stats = DecodeStats()
    frames = decode_video(clip, 8, backend="decord", stats=stats)
    assert stats.strategy == "decord" and stats.total_frames == 100
    assert [frame_index(f) for f in frames] == sample_indices(100, 8)


# --- the shared sample media (README reference values) ---------------------------------------------------


@pytest.fixture(scope="module")
def media() -> Path:
    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"sample media not available at {SHARED_MEDIA.resolve()} (no ../shared beside the checkout)")
    return SHARED_MEDIA


@pytest.mark.parametrize(
    "name, total, indices, shape",
    [
        ("jobs.mp4", 524, [0, 74, 149, 224, 298, 373, 448, 523], (8, 1024, 576, 3)),
        ("xU25MMA2N4aVtYay.mp4", 96, [0, 13, 27, 40, 54, 67, 81, 95], (8, 720, 1280, 3)),
    ],
)
def test_shared_videos_match_the_reference_values(media, name, total, indices, shape):
    seek, seek_stats, seq, _ = decode_both(media / name)
    assert seek_stats.total_frames == total and sample_indices(total, 8) == indices
    assert seek.shape == shape
    assert np.array_equal(seek, seq)  # bit-identical to the reference reader's sequential decode
    assert np.array_equal(seek, decode_video((media / name).read_bytes(), 8))


@pytest.mark.parametrize(
    "name, shape",
    [("extreme_ironing.jpg", (1, 380, 570, 3)), ("waterview.jpg", (1, 667, 1000, 3)),
     ("cat.jpeg", (1, 667, 1000, 3)), ("dog.jpeg", (1, 714, 1000, 3))],
)
def test_shared_images(media, name, shape):
    assert decode_image(media / name).shape == shape
    assert load_frames((media / name).read_bytes(), None, 8).shape == shape


@pytest.mark.parametrize("name", ["jobs.mp4", "xU25MMA2N4aVtYay.mp4"])
def test_shared_videos_decord_matches_pyav(media, name):
    pytest.importorskip("decord", reason="decord is not installed (optional backend: aurora-serve[decord])")
    assert np.array_equal(decode_video(media / name, 8, backend="decord"), decode_video(media / name, 8))
