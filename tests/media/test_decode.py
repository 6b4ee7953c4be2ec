"""Tests for aurora_serve.media.decode: AuroraCap's sampler, seek-based decoding, images, typed errors.

Most clips are generated here with PyAV; each frame carries its own index as ten black/white blocks, so a
test can read back WHICH frames were returned, not only how many.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from aurora_serve.errors import MediaError, MediaTooLargeError, UnsupportedMediaError
from aurora_serve.media import seek as seek_mod
from aurora_serve.media import source as source_mod
from aurora_serve.media.decode import DecodeStats, decode_image, decode_video, load_frames, sample_indices

SHARED_MEDIA = Path(__file__).resolve().parents[2] / ".." / "shared" / "media"
W, H = 160, 96  # 10 index blocks of 16 px across the top


# --- media made here ---------------------------------------------------------------------------------------


def frame_rgb(i: int) -> np.ndarray:
    """``(H, W, 3)`` uint8: frame index ``i`` in binary as 16x16 blocks on top, a moving gradient below."""
    img = np.empty((H, W, 3), np.uint8)
    img[16:] = ((np.arange(W)[None, :, None] * 2 + i * 5) % 256).astype(np.uint8)
    for bit in range(10):
        img[:16, bit * 16 : (bit + 1) * 16] = 255 if i >> bit & 1 else 0
    return img


def frame_index(rgb: np.ndarray) -> int:
    """The index ``frame_rgb`` drew into an (upright, decoded) frame."""
    return sum(1 << b for b in range(10) if rgb[3:13, b * 16 + 3 : (b + 1) * 16 - 3].mean() > 128)


def encode(n: int, *, fmt="mp4", codec="libx264", gop=12, bframes=2, x264="", audio=False, pts_ms=None,
           rotation=None, shift=0, options=None) -> bytes:
    """An ``n``-frame clip of ``frame_rgb`` frames at 30 fps.

    ``pts_ms``: explicit timestamps (variable frame rate). ``shift``: packets moved ``shift`` frames
    earlier, so an mp4 gets an edit list whose first frames are decoded but discarded (a stream-copy cut).
    ``options``: muxer options (needs a real file: faststart rewrites it).
    """
    tmp = tempfile.NamedTemporaryFile(suffix="." + fmt.split(",")[0], delete=False)
    tmp.close()
    try:
        with av.open(tmp.name, "w", format=fmt, options=options or {}) as out:
            stream = out.add_stream(codec, rate=30)
            stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
            if rotation is not None:
                stream.set_display_rotation(rotation)
            if codec == "libx264":
                params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}{x264}"
                stream.options = {"preset": "ultrafast", "x264-params": params}
            else:
                stream.codec_context.gop_size = gop
                stream.codec_context.max_b_frames = bframes
            if pts_ms is not None:
                stream.codec_context.time_base = Fraction(1, 1000)
            sound = out.add_stream("aac", rate=44100) if audio else None
            for i in range(n):
                frame = av.VideoFrame.from_ndarray(frame_rgb(i), format="rgb24")
                if pts_ms is not None:
                    frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
                for packet in stream.encode(frame):
                    out.mux(_shifted(packet, shift))
                if sound is not None and i % 2 == 0:
                    chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                                       layout="mono")
                    chunk.sample_rate, chunk.pts = 44100, i // 2 * 1024
                    for packet in sound.encode(chunk):
                        out.mux(packet)
            for packet in stream.encode():
                out.mux(_shifted(packet, shift))
            if sound is not None:
                for packet in sound.encode():
                    out.mux(packet)
            if n == 0:
                out.start_encoding()
        return Path(tmp.name).read_bytes()
    finally:
        os.unlink(tmp.name)


def _shifted(packet: av.Packet, frames: int) -> av.Packet:
    if frames:
        delta = int(Fraction(frames, 30) / packet.time_base)
        packet.pts, packet.dts = packet.pts - delta, packet.dts - delta
    return packet


def empty_video_with_audio() -> bytes:
    """A Matroska file with a video track that has no frames, beside an audio track that has some."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        video = out.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        sound = out.add_stream("aac", rate=44100)
        for i in range(4):
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 44100, i * 1024
            for packet in sound.encode(chunk):
                out.mux(packet)
        for packet in sound.encode():
            out.mux(packet)
    return buf.getvalue()


def image_bytes(img: Image.Image, fmt: str, **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


@pytest.fixture(scope="module")
def clip() -> bytes:
    """100 frames, GOP 48 (longer than the 8-frame stride of 14), B-frames."""
    return encode(100, gop=48, bframes=3)


def decode_both(data, num_frames=8) -> tuple[np.ndarray, DecodeStats, np.ndarray, DecodeStats]:
    seek_stats, seq_stats = DecodeStats(), DecodeStats()
    seek = decode_video(data, num_frames, stats=seek_stats)
    seq = decode_video(data, num_frames, strategy="sequential", stats=seq_stats)
    return seek, seek_stats, seq, seq_stats


# --- sample_indices ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "total, n, expected",
    [  # auroracap.md §5 worked examples
        (524, 8, [0, 74, 149, 224, 298, 373, 448, 523]),
        (96, 8, [0, 13, 27, 40, 54, 67, 81, 95]),
        (100, 8, [0, 14, 28, 42, 56, 70, 84, 99]),
        (524, 16, [0, 34, 69, 104, 139, 174, 209, 244, 278, 313, 348, 383, 418, 453, 488, 523]),
        (9, 8, [0, 1, 2, 3, 4, 5, 6, 8]),
        (5, 8, [0, 1, 2, 3, 4]),
        (1, 8, [0]),
        (0, 8, []),
    ],
)
def test_sample_indices_worked_examples(total, n, expected):
    assert sample_indices(total, n) == expected


def test_sample_indices_always_ends_and_strictly_increases():
    for total in range(1, 300, 7):
        for n in (1, 2, 3, 8, 16, 32):
            idx = sample_indices(total, n)
            assert len(idx) == min(total, n) and idx[0] == 0
            assert idx[-1] == (total - 1 if n > 1 else 0)
            assert all(b > a for a, b in zip(idx, idx[1:]))


def test_sample_indices_rejects_no_frames_wanted():
    with pytest.raises(ValueError):
        sample_indices(10, 0)


# --- seek-based decoding returns exactly the sampled frames -------------------------------------------------


CLIPS = {
    "mp4 B-frames, GOP 48 > stride": dict(n=100, gop=48, bframes=3),
    "mp4 short GOP 6 < stride": dict(n=100, gop=6, bframes=2),
    "mp4 no B-frames": dict(n=60, gop=30, bframes=0),
    "mp4 open GOP": dict(n=90, gop=24, bframes=3, x264=":open-gop=1"),
    "mp4 + audio": dict(n=60, audio=True),
    "mp4 variable frame rate": dict(
        n=90, pts_ms=np.cumsum(np.random.default_rng(1).integers(10, 80, 90)).tolist()
    ),
    "mp4 edit list (stream-copy cut)": dict(n=60, shift=5),
    "mkv (no frame count)": dict(n=60, fmt="matroska", gop=24),
    "webm vp9 (no frame count)": dict(n=40, fmt="webm", codec="libvpx-vp9", bframes=0),
    "avi mpeg4 B-frames": dict(n=60, fmt="avi", codec="mpeg4"),
}


@pytest.mark.parametrize("name", list(CLIPS))
def test_seek_returns_the_sampled_frames_bit_identical_to_sequential(name):
    spec = CLIPS[name]
    data = encode(**spec)
    seek, seek_stats, seq, seq_stats = decode_both(data)
    total = spec["n"] - spec.get("shift", 0)  # an edit list hides the cut frames from the decoder
    assert seek_stats.strategy == "seek" and seek_stats.total_frames == total
    assert seek.shape == (8, H, W, 3) and seek.dtype == np.uint8
    offset = spec.get("shift", 0)
    assert [frame_index(f) for f in seek] == [i + offset for i in sample_indices(total, 8)]
    assert np.array_equal(seek, seq)


def test_metadata_frame_count_zero_is_counted_by_demuxing():
    data = encode(60, fmt="matroska")
    with av.open(io.BytesIO(data)) as container:
        assert container.streams.video[0].frames == 0  # the case where the reference reader fails
    stats = DecodeStats()
    frames = decode_video(data, 8, stats=stats)
    assert stats.total_frames == 60
    assert [frame_index(f) for f in frames] == sample_indices(60, 8)


def test_raw_h264_without_timestamps_falls_back_to_sequential():
    data = encode(50, fmt="h264")
    stats = DecodeStats()
    frames = decode_video(data, 8, stats=stats)
    assert stats.strategy == "sequential" and stats.total_frames == 50
    assert [frame_index(f) for f in frames] == sample_indices(50, 8)


def test_container_that_lands_off_index_falls_back_to_sequential(monkeypatch, clip):
    real = seek_mod._index_packets

    def shifted(container, stream):  # an index whose pts match no decoded frame
        index = real(container, stream)
        return seek_mod._PacketIndex(index.count, [p + 1 for p in index.pts], index.key_ordinals)

    monkeypatch.setattr(seek_mod, "_index_packets", shifted)  # looked up by seek.decode_pyav
    stats = DecodeStats()
    frames = decode_video(clip, 8, stats=stats)
    assert stats.strategy == "sequential"
    assert [frame_index(f) for f in frames] == sample_indices(100, 8)


def test_seeking_decodes_far_fewer_frames_than_sequential():
    data = encode(600, gop=30, bframes=2)
    seek, seek_stats, seq, seq_stats = decode_both(data)
    assert np.array_equal(seek, seq)
    assert seq_stats.frames_decoded == 600  # the reference reader decodes the whole clip
    assert seek_stats.seeks >= 7
    assert seek_stats.frames_decoded * 4 < seq_stats.frames_decoded


def test_short_clip_returns_every_frame():
    frames = decode_video(encode(5), 8)
    assert [frame_index(f) for f in frames] == [0, 1, 2, 3, 4]


def test_more_frames_than_keyframes_and_sixteen_frame_sample(clip):
    seek, _, seq, _ = decode_both(clip, num_frames=16)
    assert [frame_index(f) for f in seek] == sample_indices(100, 16)
    assert np.array_equal(seek, seq)


def test_bytes_and_path_give_the_same_frames(clip, tmp_path):
    path = tmp_path / "clip.bin"  # no extension: the content decides
    path.write_bytes(clip)
    assert np.array_equal(decode_video(clip, 8), decode_video(path, 8))
    assert np.array_equal(decode_video(clip, 8), decode_video(str(path), 8))


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_display_rotation_is_applied(degrees):
    frames = decode_video(encode(12, rotation=degrees), 4)
    expected_shape = (4, H, W, 3) if degrees == 180 else (4, W, H, 3)
    assert frames.shape == expected_shape
    upright_to_stored = [np.rot90(f, -round(degrees / 90)) for f in frames]  # undo the turn
    assert [frame_index(f) for f in upright_to_stored] == sample_indices(12, 4)


# --- errors ----------------------------------------------------------------------------------------------


def test_video_track_without_frames_is_a_media_error():
    with pytest.raises(MediaError, match="contains no video frames") as info:
        decode_video(empty_video_with_audio(), 8)
    assert type(info.value) is MediaError and info.value.status == 400


def test_mp4_without_samples_has_no_video_stream():
    with pytest.raises(UnsupportedMediaError, match="no video stream"):  # FFmpeg drops the empty track
        decode_video(encode(0), 8)


@pytest.mark.parametrize(
    "data", [b"", b"hello world" * 50, bytes(range(256)) * 20], ids=["empty", "text", "noise"]
)
def test_not_a_video_is_unsupported(data):
    with pytest.raises(UnsupportedMediaError) as info:
        decode_video(data, 8)
    assert info.value.status == 415


def test_truncated_mp4_with_index_at_the_end_is_a_media_error(clip):
    with pytest.raises(MediaError, match="MP4/MOV file could not be read; it is truncated or corrupt") as info:
        decode_video(clip[: len(clip) // 2], 8)
    assert not isinstance(info.value, UnsupportedMediaError)


def test_truncated_faststart_mp4_decodes_the_part_it_holds():
    data = encode(60, options={"movflags": "faststart"})
    assert data[4:8] == b"ftyp" and b"moov" in data[:2000]  # the index is up front
    stats = DecodeStats()
    frames = decode_video(data[: len(data) // 2], 8, stats=stats)
    assert 0 < stats.total_frames < 60
    seen = [frame_index(f) for f in frames]
    assert seen[0] == 0 and seen == sorted(set(seen)) and seen[-1] < 60


@pytest.mark.parametrize("where", [0.3, 0.5, 0.8])
def test_corrupted_bytes_never_leak_a_raw_pyav_error(clip, where):
    data = bytearray(clip)
    start = int(len(data) * where)
    data[start : start + 400] = bytes(np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8))
    try:
        frames = decode_video(bytes(data), 8)
    except MediaError:
        return
    assert frames.shape == (8, H, W, 3)


def test_frame_count_limit(clip):
    with pytest.raises(MediaTooLargeError, match="100 frames; the limit is 99"):
        decode_video(clip, 8, max_frames_total=99)
    assert decode_video(clip, 8, max_frames_total=100).shape[0] == 8


def test_resolution_limit(monkeypatch, clip):
    monkeypatch.setattr(source_mod, "MAX_SIDE", 128)  # read by source.check_size
    with pytest.raises(MediaTooLargeError, match="160x96") as info:
        decode_video(clip, 8)
    assert info.value.status == 413


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


# --- images ----------------------------------------------------------------------------------------------


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
