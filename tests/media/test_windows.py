"""The sampling rule over the real decoders: frames read back by the index each frame carries.

Clips are 30 fps with known durations (``tests.support.clips.encode``), so the rule's expected ordinals are
known exactly; every backend and strategy must return those frames (window, rate, cap and their corners).
"""

from __future__ import annotations

import importlib.util

import pytest

from aurora_serve.errors import InvalidRequestError
from aurora_serve.media.decode import DecodeStats, decode_video
from aurora_serve.media.sampling import Sampling, plan_frames, sample_indices
from tests.support.clips import encode, frame_index

BACKENDS = [("pyav", "seek"), ("pyav", "sequential")]
if importlib.util.find_spec("decord") is not None:
    BACKENDS.append(("decord", "seek"))


@pytest.fixture(scope="module")
def clip() -> bytes:
    return encode(150, gop=30, bframes=2)  # 5 s at 30 fps


def indices(data, sampling, backend, strategy, stats=None) -> list[int]:
    frames = decode_video(data, sampling, backend, strategy=strategy, stats=stats)
    return [frame_index(f) for f in frames]


@pytest.mark.parametrize("backend, strategy", BACKENDS)
@pytest.mark.parametrize("sampling, expected", [
    (Sampling(num_frames=8), sample_indices(150, 8)),
    (Sampling(num_frames=4, start=1.0, end=2.0), [30, 39, 49, 59]),
    (Sampling(fps=2.0, max_frames=64, start=2.0), [60 + i for i in sample_indices(90, 6)]),  # 2 fps × 3 s
    (Sampling(fps=2.0, max_frames=3), sample_indices(150, 3)),  # the cap binds (10 wanted)
    (Sampling(fps=60.0, max_frames=64, start=4.5), list(range(135, 150))),  # above the clip's 30 fps: all 15
    (Sampling(num_frames=5, start=4.9, end=99.0), [147, 148, 149]),  # the window at the end, past the end
])
def test_decoders_return_the_rules_frames(clip, backend, strategy, sampling, expected):
    stats = DecodeStats()
    assert indices(clip, sampling, backend, strategy, stats) == expected
    assert stats.duration == pytest.approx(5.0, abs=1e-6)


@pytest.mark.parametrize("backend, strategy", BACKENDS)
def test_a_window_past_the_end_says_the_duration(clip, backend, strategy):
    with pytest.raises(InvalidRequestError, match=r"duration is 5\.000 s") as info:
        decode_video(clip, Sampling(num_frames=4, start=5.0), backend, strategy=strategy)
    assert info.value.status == 400 and info.value.param == "start"


def test_variable_frame_rate_windows_follow_the_timestamps():
    # 20 frames: 10 at 10 fps (0.0-0.9 s), then 10 at 2 fps (1.0-5.5 s)
    pts_ms = [i * 100 for i in range(10)] + [1000 + i * 500 for i in range(10)]
    vfr = encode(20, pts_ms=pts_ms, gop=5, bframes=0)
    got = indices(vfr, Sampling(num_frames=20, start=2.0, end=4.0), "pyav", "seek")
    assert got == [12, 13, 14, 15]  # shown at 2.0, 2.5, 3.0, 3.5 s
    assert got == plan_frames([t / 1000 for t in pts_ms], Sampling(num_frames=20, start=2.0, end=4.0))
