"""Tests for aurora_serve.media.sampling: AuroraCap's frame sampler (auroracap.md §5)."""

from __future__ import annotations

import pytest

from aurora_serve.errors import InvalidRequestError
from aurora_serve.media.sampling import Sampling, duration_of, plan_frames, rate_count, sample_indices


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


# --- the rule over a timeline: window, rate, cap ---------------------------------------------------------

TIMES_30 = [i / 30 for i in range(300)]  # 10 s at 30 fps


@pytest.mark.parametrize("sampling, expected", [
    (Sampling(num_frames=8), sample_indices(300, 8)),  # plain: upstream's linspace over the whole video
    (Sampling(num_frames=3, start=2.0, end=3.0), [60, 74, 89]),  # linspace over frames 60..89
    (Sampling(fps=2.0, max_frames=64, start=2.0, end=4.0), [60, 79, 99, 119]),  # 2 fps × 2 s = 4 over 60..119
    (Sampling(fps=1.0, max_frames=64), sample_indices(300, 10)),  # 1 fps × 10 s
    (Sampling(fps=2.0, max_frames=5), sample_indices(300, 5)),  # the cap binds
    (Sampling(fps=100.0, max_frames=64, start=9.5), list(range(285, 300))),  # above the video's rate: every frame
    (Sampling(fps=0.01, max_frames=64), [0]),  # under one frame: at least one
    (Sampling(num_frames=4, start=8.0, end=60.0), [240, 259, 279, 299]),  # an end past the end is the end
])
def test_plan_frames_rule(sampling, expected):
    assert plan_frames(TIMES_30, sampling) == expected


def test_rate_count_rounds_half_up():
    assert rate_count(Sampling(fps=0.25, max_frames=64), 10.0) == 3  # 2.5 → 3, not banker's 2
    assert rate_count(Sampling(fps=1.0, max_frames=64), 7.49) == 7
    assert rate_count(Sampling(fps=1e308, max_frames=64), 10.0) == 64  # the product is inf: the cap, no overflow


@pytest.mark.parametrize("sampling, code", [
    (Sampling(num_frames=4, start=10.0), "window_past_end"), (Sampling(num_frames=4, start=30.0), "window_past_end"),
    (Sampling(num_frames=4, start=1.001, end=1.02), "empty_window"),
])
def test_windows_outside_the_video_are_400s_that_say_the_duration(sampling, code):
    with pytest.raises(InvalidRequestError) as info:
        plan_frames(TIMES_30, sampling)
    assert info.value.code == code and info.value.status == 400 and "10.000 s" in info.value.message


def test_duration_is_the_last_frame_plus_one_interval():
    assert duration_of(TIMES_30) == pytest.approx(10.0)
    assert duration_of([0.0], fallback_rate=25) == pytest.approx(0.04) and duration_of([]) == 0.0
