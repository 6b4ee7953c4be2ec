"""PyAV video decoding: index the packets, then seek to the sampled frames, or decode sequentially.

``decode_pyav`` is the PyAV backend of ``decode.decode_video`` (the strategy and its costs are described
there); ``open_container`` and ``video_stream`` also give the decord backend PyAV's errors and size checks.
Every loop here spends from the item's ``DecodeBudget`` (packets fed to the decoder, a deadline, the
request's cancellation), and each sampled frame goes through ``transform`` as soon as it is decoded, so at
most one full-resolution frame is held at a time.
Legend: T frames in the video; ordinal: a frame's index in presentation order.
"""

from __future__ import annotations

import bisect
import contextlib
from dataclasses import dataclass, field
from typing import Callable

import av
import numpy as np

from aurora_serve.errors import MediaError, MediaTooLargeError, UnsupportedMediaError
from aurora_serve.media.budget import DecodeBudget
from aurora_serve.media.containers import NAMES, demuxer_for, file_size
from aurora_serve.media.sampling import DecodeStats, Sampling, duration_of, plan_frames
from aurora_serve.media.source import Source, check_size, file_arg

_INDEX_CHECK_EVERY = 256  # packets demuxed between budget checks while indexing


@dataclass(frozen=True)
class _PacketIndex:
    """The video stream's packets, read by demuxing only.

    ``count`` frames; ``pts[i]`` is the pts of frame ``i`` in presentation order (None when some packet has
    no usable pts, e.g. a raw elementary stream); ``key_ordinals`` are the key frames' ordinals, ascending.
    """

    count: int
    pts: list[int] | None
    key_ordinals: list[int]


@dataclass
class _Work:
    """One decode's bookkeeping: what it did, what it may still do, and what becomes of each sampled frame."""

    stats: DecodeStats
    budget: DecodeBudget
    transform: Callable[[np.ndarray], np.ndarray]
    shapes: set = field(default_factory=set)

    def keep(self, frame) -> np.ndarray:
        check_size(frame.width, frame.height, what="the video", max_pixels=self.budget.max_frame_pixels)
        rgb = _to_rgb(frame)
        self.shapes.add(rgb.shape)
        return self.transform(rgb)


def decode_pyav(source, sampling: Sampling, max_frames_total, threads, strategy, stats, budget: DecodeBudget,
                transform: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    work = _Work(stats, budget, transform)
    with open_container(source) as container:
        stream = video_stream(container, threads, budget)
        index = _index_packets(container, stream, budget)
        # Metadata wins (the reference's T) unless it is missing or claims frames the file lacks
        # (truncated, or frames an edit list hides).
        total = stream.frames if 0 < stream.frames <= index.count else index.count
        stats.total_frames = total
        if total == 0:
            raise MediaError("the video contains no video frames")
        if max_frames_total is not None and total > max_frames_total:
            raise MediaTooLargeError(f"the video has {total} frames; the limit is {max_frames_total}")
        times = _frame_times(index, stream, total)
        stats.duration = duration_of(times, _rate(stream))
        wanted = plan_frames(times, sampling, stats.duration)
        budget.claim_pixels(len(wanted) * stream.codec_context.width * stream.codec_context.height)
        frames = None
        if strategy == "seek" and index.pts is not None:
            stats.strategy = "seek"
            frames = _decode_seeking(container, stream, index, wanted, work)
    if frames is None:  # asked for, or the container did not seek as its index said
        stats.strategy = "sequential"
        work.shapes.clear()
        with open_container(source) as container:
            frames = _decode_sequential(container, video_stream(container, threads, budget), wanted, work)
    missing = [i for i in wanted if i not in frames]
    if missing:
        raise MediaError(
            f"the video is truncated or corrupt: frame {missing[0]} of {total} could not be decoded"
        )
    if len(work.shapes) > 1:
        raise UnsupportedMediaError(f"the video changes resolution mid-stream ({sorted(work.shapes)})")
    return np.stack([frames[i] for i in wanted])


def video_times(source: Source, budget: DecodeBudget | None = None) -> tuple[list[float], float]:
    """The timeline ``plan_frames`` samples on, by demuxing only: each frame's time in seconds (presentation
    order, frame 0 at 0) and the video's duration. For callers that plan windows before decoding."""
    budget = budget or DecodeBudget()
    try:
        with open_container(source) as container:
            stream = video_stream(container, 1, budget)
            index = _index_packets(container, stream, budget)
            total = stream.frames if 0 < stream.frames <= index.count else index.count
            if total == 0:
                raise MediaError("the video contains no video frames")
            times = _frame_times(index, stream, total)
            return times, duration_of(times, _rate(stream))
    except av.FFmpegError as exc:
        raise MediaError(f"the video could not be read; it is corrupt or truncated ({exc})") from exc


_LATE = object()  # _decode_forward's answer when the decoder is already past the target


def _frame_times(index: _PacketIndex, stream, total: int) -> list[float]:
    """Seconds from the first frame to each of the first ``total`` frames (presentation order): from the
    packets' pts, or from the stream's frame rate where the packets have none (raw streams)."""
    if index.pts is not None and stream.time_base is not None:
        first, base = index.pts[0], stream.time_base
        return [float((p - first) * base) for p in index.pts[:total]]
    rate = _rate(stream) or 25.0  # a raw stream without a rate: FFmpeg's own guess is 25
    return [i / rate for i in range(total)]


def _rate(stream) -> float | None:
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else None


def _decode_seeking(container, stream, index: _PacketIndex, wanted, work: _Work) -> dict[int, np.ndarray] | None:
    """Sampled frames by seeking; None when the container lands somewhere its index did not predict."""
    ordinal_of = {pts: i for i, pts in enumerate(index.pts)}
    keep_pts = frozenset(index.pts[i] for i in wanted)
    key_ordinals = index.key_ordinals
    out: dict[int, np.ndarray] = {}
    frames = None  # the decoder's output since the last seek
    last = -1  # ordinal of the frame the decoder returned last
    for target in wanted:
        k = bisect.bisect_right(key_ordinals, target) - 1
        if k < 0:
            return None  # no key frame at or before the target
        got = _LATE
        # Decode on when the target's key frame is not past the frame the decoder produces next: seeking
        # back to it would decode the same frames again.
        if frames is not None and key_ordinals[k] <= last + 1:
            got, last = _decode_forward(frames, target, ordinal_of, last, work)
        # Seek to the target's own pts first. FFmpeg's mov demuxer shifts a seek target by one global
        # pts-dts offset onto its dts-keyed index, so with variable frame rate a key frame's own pts can
        # land a whole GOP early, while the target's pts lands on its key frame; pts-indexed containers
        # (Matroska) land on the key frame either way. Should that land past the target, the key frame's
        # pts cannot.
        for timestamp in (index.pts[target], index.pts[key_ordinals[k]]):
            if got is not _LATE:
                break
            container.seek(timestamp, backward=True, any_frame=False, stream=stream)
            work.stats.seeks += 1
            frames = _decoded_frames(container, stream, work.budget, keep_pts)
            got, last = _decode_forward(frames, target, ordinal_of, -1, work)
        if got is _LATE:
            return None
        if got is None:
            break  # the decoder ran dry: the caller reports the missing frames
        out[target] = got
    return out


def _decode_forward(frames, target: int, ordinal_of: dict, last: int, work: _Work):
    """Decode up to the frame at ordinal ``target``; returns ``(kept frame | None | _LATE, last ordinal)``.

    None: the decoder ran dry first. _LATE: a frame after the target, or one with an unknown pts, came first.
    """
    for frame in frames:
        work.stats.frames_decoded += 1
        ordinal = ordinal_of.get(frame.pts)
        if ordinal is None or ordinal > target:
            return _LATE, last
        last = ordinal
        if ordinal == target:
            return work.keep(frame), last
    return None, last


def _decode_sequential(container, stream, wanted, work: _Work) -> dict[int, np.ndarray]:
    """The reference reader: decode from frame 0, keep the sampled ordinals, stop after the last one."""
    keep, out = set(wanted), {}
    for ordinal, frame in enumerate(_decoded_frames(container, stream, work.budget)):
        work.stats.frames_decoded += 1
        if ordinal in keep:
            out[ordinal] = work.keep(frame)
        if ordinal >= wanted[-1]:
            break
    return out


def _decoded_frames(container, stream, budget: DecodeBudget, keep_pts: frozenset | None = None):
    """``container.decode(stream)``, minus work whose frames nobody looks at.

    Packets the demuxer marks corrupt are not fed (a truncated file's cut-off last packet would otherwise
    fail the whole decode; without it the file decodes as the shorter video it holds). Edit-list discards
    are fed (later frames may reference them); the decoder drops their frames itself. With ``keep_pts``,
    only packets with those pts are decoded in full: for the others the decoder skips non-reference
    frames (most B-frames), which no other frame depends on, so the kept frames' pixels are unchanged.
    """
    context = stream.codec_context
    for packet in container.demux(stream):
        if packet.size and packet.is_corrupt:
            continue
        budget.spend()  # before the decoder works on it: over budget, it never does
        if keep_pts is not None:
            skip = "DEFAULT" if packet.pts in keep_pts else "NONREF"
            if context.skip_frame != skip:
                context.skip_frame = skip
        yield from packet.decode()


def _index_packets(container, stream, budget: DecodeBudget) -> _PacketIndex:
    """Demux (no decoding) the video stream: frame count, pts of each output frame, key frames."""
    pts, key_pts, count = [], [], 0
    leading_key = False  # a key frame before the edit list's start (a stream-copy cut): it starts frame 0
    # A truncated file simply ends early here; a demuxer error mid-file propagates (→ MediaError).
    for n, packet in enumerate(container.demux(stream)):
        if n % _INDEX_CHECK_EVERY == 0:
            budget.check()
        if packet.size == 0 or packet.is_corrupt:  # the end-of-stream packet; see _decoded_frames
            continue
        if packet.is_discard:  # decoded as a reference, never output: not a frame of the video
            leading_key = leading_key or packet.is_keyframe
            continue
        count += 1
        pts.append(packet.pts)
        if packet.is_keyframe:
            key_pts.append(packet.pts)
    if None in pts or len(set(pts)) != len(pts):
        return _PacketIndex(count, None, [])
    ordered = sorted(pts)
    ordinal_of = {p: i for i, p in enumerate(ordered)}
    key_ordinals = {ordinal_of[p] for p in key_pts} | ({0} if leading_key and ordered else set())
    return _PacketIndex(count, ordered, sorted(key_ordinals))


@contextlib.contextmanager
def open_container(source: Source):
    """The video's container, opened with the demuxer its first bytes name (``containers``: an allow-list).

    FFmpeg reads through a Python file object in every case, so no FFmpeg protocol is ever involved."""
    with _file(source) as f:
        name = demuxer_for(f, file_size(f))
        try:
            container = av.open(f, mode="r", format=name, metadata_errors="ignore")
        except av.FFmpegError as exc:
            raise MediaError(f"the {NAMES[name]} file could not be read; it is truncated or corrupt ({exc})") from exc
        with container:
            yield container


@contextlib.contextmanager
def _file(source: Source):
    """A binary file object over ``source``: its bytes, or the path ``file_arg`` checked (closed after)."""
    arg = file_arg(source)
    if not isinstance(arg, str):
        yield arg
        return
    with open(arg, "rb") as f:
        yield f


def video_stream(container, threads: int, budget: DecodeBudget):
    """The first real video stream (cover art in audio files does not count), set up for decoding."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            break
    else:
        raise UnsupportedMediaError("the file has no video stream")
    if stream.codec_context is None:  # PyAV found no decoder for the stream's codec
        raise UnsupportedMediaError("the video's codec is not one this server can decode")
    check_size(stream.codec_context.width, stream.codec_context.height, what="the video",
               max_pixels=budget.max_frame_pixels)
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = max(1, threads)
    return stream


def _to_rgb(frame) -> np.ndarray:
    """One decoded frame → ``(H, W, 3)`` uint8 RGB, upright (display-matrix rotation applied)."""
    rgb = frame.to_ndarray(format="rgb24")  # the reference reader's conversion, for identical pixels
    turns = round((frame.rotation or 0) / 90) % 4  # counter-clockwise quarter turns
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb
