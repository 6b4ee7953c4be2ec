"""Decode videos and images into RGB frames, sampling video frames as AuroraCap does, by seeking.

Legend: F frames, H height, W width, T frames in the video. Every function here blocks on CPU work;
running it off the event loop is the caller's job. This module is the public entry point and holds the
decord backend; the PyAV machinery is in ``seek``, images in ``image``, the sampler and ``DecodeStats`` in
``sampling``, the source type and size limits in ``source``.

Sampling (``../shared/reference/auroracap.md`` §5): T is the container's frame count, ``n = min(T,
num_frames)`` and the frames kept are those at ``linspace(0, T - 1, n)`` truncated, counted in decoder output
(presentation) order. The reference reader decodes sequentially from frame 0 to the last sampled index, i.e.
the whole clip. Here the video's packets are indexed first (demuxing only, no decoding); then, for each
sampled frame, the decoder seeks to the key frame before it only when that key frame lies beyond the frame
the decoder would produce next, and decodes forward to the exact frame, identified by its pts; frames that
no other frame references (most B-frames) are skipped on the way. The pixels are those sequential decoding
produces; where a container does not seek the way its index says, decoding falls back to the sequential
reader. Costs (benchmarks/bench_decode.py, 1080p H.264, GOP 2 s): ~1/6 of the reference's at 60 s, ~1/50
at 10 min.

Deliberate differences from the reference reader:

- a frame count of 0 or missing in the metadata (raw streams, many mkv/webm) is counted by demuxing;
  the reference fails there;
- a container that declares more frames than its packets hold (a truncated upload, frames an edit list
  hides) uses the frames present;
- the display-matrix rotation is applied, so phone videos come out upright (mirror flags are not applied;
  the decord backend applies neither); images get their EXIF orientation applied;
- every failure is a typed ``MediaError``; no PyAV, Pillow or decord exception leaks.
"""

from __future__ import annotations

from typing import Callable

import av
import numpy as np

from aurora_serve.errors import MediaError, MediaTooLargeError
from aurora_serve.media import VIDEO_BACKENDS
from aurora_serve.media.budget import DecodeBudget
from aurora_serve.media.image import decode_image, sniff_kind
from aurora_serve.media.sampling import DecodeStats, Sampling, duration_of, plan_frames, sample_indices  # noqa: F401
from aurora_serve.media.seek import decode_pyav, open_container, video_stream
from aurora_serve.media.source import MAX_PIXELS, MAX_SIDE, Source, file_arg

__all__ = [
    "DEFAULT_THREADS",
    "MAX_PIXELS",
    "MAX_SIDE",
    "VIDEO_BACKENDS",
    "DecodeStats",
    "Sampling",
    "Source",
    "decode_image",
    "decode_video",
    "load_frames",
    "sample_indices",
]

# Decoder threads per call. One: a server decodes several requests at once, and frame threading costs
# CPU on every seek (the pipeline is flushed) while only shortening long sequential decodes.
DEFAULT_THREADS = 1


def decode_video(
    source: Source,
    sampling: Sampling | int,
    backend: str = "pyav",
    max_frames_total: int | None = None,
    *,
    threads: int = DEFAULT_THREADS,
    strategy: str = "seek",
    stats: DecodeStats | None = None,
    budget: DecodeBudget | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Decode the AuroraCap sample of a video: ``(F, H, W, 3)`` uint8 RGB (``F = min(T, num_frames)`` for a
    plain frame count).

    Args:
        source: the file's bytes, or a path to it.
        sampling: which frames (``media.sampling``); an int is a plain frame count (8 in AuroraCap's
            inference); fewer come back when the video (or the window) holds fewer.
        backend: ``"pyav"`` or ``"decord"`` (optional dependency, same sampling).
        max_frames_total: reject videos with more than this many frames (MediaTooLargeError).
        threads: decoder threads for this call.
        strategy: ``"seek"`` (default) or ``"sequential"`` (the reference reader's way: decode from frame 0
            up to the last sampled frame; same T, same frames; for benchmarks and as the fallback).
        stats: filled in with what was done, if given.
        budget: what the decode may spend (frames decoded, seconds, pixels, cancellation); none: unbounded.
        transform: applied to each sampled ``(H, W, 3)`` frame as soon as it is decoded (e.g. ``clip_crop``):
            the result stacks those instead, and no more than one full-size frame is held at a time.

    Raises:
        UnsupportedMediaError: not a video container, or no video stream.
        MediaTooLargeError: a frame over ``MAX_SIDE``/``MAX_PIXELS``, or more frames than allowed.
        MediaError: no frames, truncated or corrupt data.
    """
    if isinstance(sampling, int):
        if sampling < 1:
            raise ValueError(f"num_frames must be >= 1, got {sampling}")
        sampling = Sampling(num_frames=sampling)
    if strategy not in ("seek", "sequential"):
        raise ValueError(f"unknown strategy {strategy!r}; expected 'seek' or 'sequential'")
    stats = stats if stats is not None else DecodeStats()
    budget = budget if budget is not None else DecodeBudget()
    transform = transform or _identity
    if backend == "decord":
        return _decode_decord(source, sampling, max_frames_total, threads, stats, budget, transform)
    if backend not in VIDEO_BACKENDS:
        raise ValueError(f"unknown video backend {backend!r}; expected {' or '.join(map(repr, VIDEO_BACKENDS))}")
    try:
        return decode_pyav(source, sampling, max_frames_total, threads, strategy, stats, budget, transform)
    except av.FFmpegError as exc:
        raise MediaError(f"the video could not be decoded; it is corrupt or truncated ({exc})") from exc


def load_frames(
    source: Source,
    kind: str | None,
    sampling: Sampling | int,
    backend: str = "pyav",
    *,
    max_frames_total: int | None = None,
    threads: int = DEFAULT_THREADS,
    budget: DecodeBudget | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    stats: DecodeStats | None = None,
) -> np.ndarray:
    """Frames for one media item: ``(F, H, W, 3)`` uint8 RGB (F = 1 for an image), or ``transform`` of each.

    ``kind`` is ``"video"``, ``"image"`` or None; None detects the kind from the content (an image if
    Pillow recognises the header, otherwise a video), never from a file name. The keyword arguments
    apply to videos (see ``decode_video``).
    """
    kind = kind or sniff_kind(source)
    if kind == "image":
        return decode_image(source, budget=budget, transform=transform)
    if kind == "video":
        return decode_video(source, sampling, backend, max_frames_total, threads=threads, budget=budget,
                            transform=transform, stats=stats)
    raise ValueError(f"unknown media kind {kind!r}; expected 'video', 'image' or None")


# --- decord ---------------------------------------------------------------------------------------------


def _identity(frame: np.ndarray) -> np.ndarray:
    return frame


def _decode_decord(source, sampling: Sampling, max_frames_total, threads, stats, budget, transform) -> np.ndarray:
    try:
        import decord
        from decord._ffi.base import DECORDError
    except ImportError as exc:
        raise ImportError("backend='decord' needs decord: pip install 'aurora-serve[decord]'") from exc
    stats.strategy = "decord"
    with open_container(source) as container:  # same allow-list, errors and size limits as PyAV, before decoding
        stream = video_stream(container, threads, budget)
        width, height = stream.codec_context.width, stream.codec_context.height
    try:
        reader = decord.VideoReader(file_arg(source), ctx=decord.cpu(0), num_threads=max(1, threads))
        total = stats.total_frames = len(reader)
        if max_frames_total is not None and total > max_frames_total:
            raise MediaTooLargeError(f"the video has {total} frames; the limit is {max_frames_total}")
        times = reader.get_frame_timestamp(np.arange(total))[:, 0]
        times = (times - times[0]).tolist()
        stats.duration = duration_of(times, float(reader.get_avg_fps() or 0) or None)
        wanted = plan_frames(times, sampling, stats.duration)
        budget.claim_pixels(len(wanted) * width * height)
        frames = []
        for i in wanted:  # one at a time: decord decodes inside each call, the budget is checked between them
            budget.spend()
            frames.append(transform(reader[i].asnumpy()))
    except (DECORDError, RuntimeError, AssertionError) as exc:  # decord asserts T > 0 on open
        raise MediaError(f"the video could not be decoded by decord ({exc})") from exc
    return np.stack(frames)  # stats.frames_decoded stays 0: decord does not say how many frames it decoded

