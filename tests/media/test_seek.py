"""Tests for aurora_serve.media.seek, through ``decode_video``: seek-based sampling returns exactly the
frames sequential decoding does; fallbacks, rotation, broken containers and size limits on videos.
"""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from aurora_serve.errors import MediaError, MediaTooLargeError, UnsupportedMediaError
from aurora_serve.media import seek as seek_mod
from aurora_serve.media import source as source_mod
from aurora_serve.media.decode import decode_video
from aurora_serve.media.sampling import DecodeStats, sample_indices
from tests.support.clips import H, W, decode_both, empty_video_with_audio, encode, frame_index


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

    def shifted(container, stream, budget):  # an index whose pts match no decoded frame
        index = real(container, stream, budget)
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

