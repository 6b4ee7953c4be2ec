"""Tests for aurora_serve.media.sampling: AuroraCap's frame sampler (auroracap.md §5)."""

from __future__ import annotations

import pytest

from aurora_serve.media.sampling import sample_indices


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
