"""Which frames of a video are kept (AuroraCap's sampler, with a rate and a time window), and the record of
what one video decode did, shared by every backend.

The rule (README "Frame sampling"): the window is ``[start, end)`` seconds of the video's timeline (frame 0
at 0 s; ``end`` past the end is the end; ``start`` past the end is an error that says the duration). Then
``num_frames`` wins over ``fps``; with ``fps`` the count is ``fps × window length``, rounded half up, clamped to
``[1, max_frames]``; fewer frames come back when the window holds fewer. The frames are AuroraCap's
``linspace`` over the window's frames, so with no window and no rate the sample is upstream's exactly.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from aurora_serve.errors import InvalidRequestError
from aurora_serve.media.item import Sampling

__all__ = ["DecodeStats", "Sampling", "duration_of", "plan_frames", "rate_count", "sample_indices"]


@dataclass
class DecodeStats:
    """What one ``decode_video`` call did (for tests, benchmarks and metrics); filled in by the call."""

    strategy: str = ""  # "seek", "sequential" or "decord"
    total_frames: int = 0  # T
    frames_decoded: int = 0  # frames the decoder returned (skipped non-reference frames not counted)
    seeks: int = 0
    duration: float = 0.0  # seconds, as the sampler saw it


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


def duration_of(times: Sequence[float], fallback_rate: float | None = None) -> float:
    """Seconds the video lasts: the last frame's time plus one frame interval (the mean one)."""
    if not times:
        return 0.0
    if len(times) > 1:
        return times[-1] + (times[-1] - times[0]) / (len(times) - 1)
    return times[0] + (1 / fallback_rate if fallback_rate else 0.0)


def plan_frames(times: Sequence[float], sampling: Sampling, duration: float | None = None) -> list[int]:
    """The ordinals to keep of a video whose frame ``i`` is shown at ``times[i]`` seconds (ascending, frame 0
    at 0). Raises a 400 when the window starts past the end or holds no frame."""
    total = len(times)
    if sampling.plain:
        return sample_indices(total, sampling.num_frames)
    duration = duration_of(times) if duration is None else duration
    start = sampling.start or 0.0
    end = duration if sampling.end is None else min(sampling.end, duration)
    if start >= duration - 1e-6:  # float noise in timestamps must not turn "at the end" into an empty window
        raise InvalidRequestError(f"the window starts at {start:g} s, at or past the end of the video "
                                  f"(its duration is {duration:.3f} s)", param="start", code="window_past_end")
    first, last = bisect.bisect_left(times, start), bisect.bisect_left(times, end)
    if first >= last:
        raise InvalidRequestError(f"the window {start:g}-{end:g} s holds no frame of the video (duration "
                                  f"{duration:.3f} s)", param="start", code="empty_window")
    count = sampling.num_frames if sampling.num_frames is not None else rate_count(sampling, end - start)
    return [first + i for i in sample_indices(last - first, count)]


def rate_count(sampling: Sampling, seconds: float) -> int:
    """``fps × seconds`` rounded half up, clamped to ``[1, max_frames]``."""
    wanted = sampling.fps * seconds + 0.5
    if sampling.max_frames and wanted >= sampling.max_frames:
        return sampling.max_frames  # before rounding: fps × seconds may overflow to inf (fps=1e308 is finite)
    return max(1, math.floor(wanted))
