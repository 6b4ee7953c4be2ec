"""AuroraCap's frame sampler and the record of what one video decode did, shared by both backends."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class DecodeStats:
    """What one ``decode_video`` call did (for tests, benchmarks and metrics); filled in by the call."""

    strategy: str = ""  # "seek", "sequential" or "decord"
    total_frames: int = 0  # T
    frames_decoded: int = 0  # frames the decoder returned (skipped non-reference frames not counted)
    seeks: int = 0


def sample_indices(total_frames: int, num_frames: int) -> list[int]:
    """AuroraCap's frame indices: ``linspace(0, T - 1, min(T, num_frames))`` truncated to int.

    ``sample_indices(524, 8) == [0, 74, 149, 224, 298, 373, 448, 523]``; ``sample_indices(5, 8) == [0..4]``;
    ``sample_indices(0, 8) == []``. The indices are strictly increasing (the step is >= 1).
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if total_frames <= 0:
        return []
    n = min(total_frames, num_frames)
    return np.linspace(0, total_frames - 1, n).astype(int).tolist()
