"""Decode videos and images into RGB frames, sampling video frames as AuroraCap does, by seeking.

Legend: F frames, H height, W width, T frames in the video. Every function here blocks on CPU work;
running it off the event loop is the caller's job.

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

import bisect
import io
import os
from dataclasses import dataclass

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from aurora_serve.errors import MediaError, MediaTooLargeError, UnsupportedMediaError

Source = bytes | bytearray | memoryview | str | os.PathLike
MAX_SIDE = 8192  # px per side, images and video frames
MAX_PIXELS = 64_000_000  # per image / frame; also stops decompression bombs before the pixels are allocated
# Decoder threads per call. One: a server decodes several requests at once, and frame threading costs
# CPU on every seek (the pipeline is flushed) while only shortening long sequential decodes.
DEFAULT_THREADS = 1


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


def decode_video(
    source: Source,
    num_frames: int,
    backend: str = "pyav",
    max_frames_total: int | None = None,
    *,
    threads: int = DEFAULT_THREADS,
    strategy: str = "seek",
    stats: DecodeStats | None = None,
) -> np.ndarray:
    """Decode the AuroraCap sample of a video: ``(F, H, W, 3)`` uint8 RGB, ``F = min(T, num_frames)``.

    Args:
        source: the file's bytes, or a path to it.
        num_frames: frames wanted (8 in AuroraCap's inference); fewer come back when T is smaller.
        backend: ``"pyav"`` or ``"decord"`` (optional dependency, same sampling).
        max_frames_total: reject videos with more than this many frames (MediaTooLargeError).
        threads: decoder threads for this call.
        strategy: ``"seek"`` (default) or ``"sequential"`` (the reference reader's way: decode from frame 0
            up to the last sampled frame; same T, same frames; for benchmarks and as the fallback).
        stats: filled in with what was done, if given.

    Raises:
        UnsupportedMediaError: not a video container, or no video stream.
        MediaTooLargeError: a frame over ``MAX_SIDE``/``MAX_PIXELS``, or more frames than allowed.
        MediaError: no frames, truncated or corrupt data.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if strategy not in ("seek", "sequential"):
        raise ValueError(f"unknown strategy {strategy!r}; expected 'seek' or 'sequential'")
    stats = stats if stats is not None else DecodeStats()
    if backend == "decord":
        return _decode_decord(source, num_frames, max_frames_total, threads, stats)
    if backend != "pyav":
        raise ValueError(f"unknown video backend {backend!r}; expected 'pyav' or 'decord'")
    try:
        return _decode_pyav(source, num_frames, max_frames_total, threads, strategy, stats)
    except av.FFmpegError as exc:
        raise MediaError(f"the video could not be decoded; it is corrupt or truncated ({exc})") from exc


def decode_image(source: Source) -> np.ndarray:
    """Decode an image into ``(1, H, W, 3)`` uint8 RGB, EXIF orientation applied (first frame if animated).

    Raises UnsupportedMediaError (not an image Pillow reads), MediaTooLargeError (over ``MAX_SIDE`` /
    ``MAX_PIXELS``, checked from the header before decoding) or MediaError (truncated or corrupt).
    """
    try:
        with Image.open(_file_arg(source)) as image:
            _check_size(*image.size, what="the image")
            upright = ImageOps.exif_transpose(image)
            rgb = np.asarray(upright.convert("RGB"))
    except Image.DecompressionBombError as exc:
        raise MediaTooLargeError(f"the image is too large to decode ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedMediaError("the data is not an image format this server reads") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's truncated / corrupt data errors
        raise MediaError(f"the image could not be decoded; it is corrupt or truncated ({exc})") from exc
    return rgb[None]


def load_frames(
    source: Source,
    kind: str | None,
    num_frames: int,
    backend: str = "pyav",
    *,
    max_frames_total: int | None = None,
    threads: int = DEFAULT_THREADS,
) -> np.ndarray:
    """Frames for one media item: ``(F, H, W, 3)`` uint8 RGB (F = 1 for an image).

    ``kind`` is ``"video"``, ``"image"`` or None; None detects the kind from the content (an image if
    Pillow recognises the header, otherwise a video), never from a file name. The keyword arguments
    apply to videos (see ``decode_video``).
    """
    if kind is None:
        kind = "image" if _is_image(source) else "video"
    if kind == "image":
        return decode_image(source)
    if kind == "video":
        return decode_video(source, num_frames, backend, max_frames_total, threads=threads)
    raise ValueError(f"unknown media kind {kind!r}; expected 'video', 'image' or None")


# --- PyAV -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PacketIndex:
    """The video stream's packets, read by demuxing only.

    ``count`` frames; ``pts[i]`` is the pts of frame ``i`` in presentation order (None when some packet has
    no usable pts, e.g. a raw elementary stream); ``key_ordinals`` are the key frames' ordinals, ascending.
    """

    count: int
    pts: list[int] | None
    key_ordinals: list[int]


def _decode_pyav(source, num_frames, max_frames_total, threads, strategy, stats) -> np.ndarray:
    with _open_container(source) as container:
        stream = _video_stream(container, threads)
        index = _index_packets(container, stream)
        # Metadata wins (the reference's T) unless it is missing or claims frames the file lacks
        # (truncated, or frames an edit list hides).
        total = stream.frames if 0 < stream.frames <= index.count else index.count
        stats.total_frames = total
        if total == 0:
            raise MediaError("the video contains no video frames")
        if max_frames_total is not None and total > max_frames_total:
            raise MediaTooLargeError(f"the video has {total} frames; the limit is {max_frames_total}")
        wanted = sample_indices(total, num_frames)
        frames = None
        if strategy == "seek" and index.pts is not None:
            stats.strategy = "seek"
            frames = _decode_seeking(container, stream, index, wanted, stats)
    if frames is None:  # asked for, or the container did not seek as its index said
        stats.strategy = "sequential"
        with _open_container(source) as container:
            frames = _decode_sequential(container, _video_stream(container, threads), wanted, stats)
    missing = [i for i in wanted if i not in frames]
    if missing:
        raise MediaError(
            f"the video is truncated or corrupt: frame {missing[0]} of {total} could not be decoded"
        )
    shapes = {frames[i].shape for i in wanted}
    if len(shapes) > 1:
        raise UnsupportedMediaError(f"the video changes resolution mid-stream ({sorted(shapes)})")
    return np.stack([frames[i] for i in wanted])


_LATE = object()  # _decode_forward's answer when the decoder is already past the target


def _decode_seeking(container, stream, index: _PacketIndex, wanted, stats) -> dict[int, np.ndarray] | None:
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
            got, last = _decode_forward(frames, target, ordinal_of, last, stats)
        # Seek to the target's own pts first. FFmpeg's mov demuxer shifts a seek target by one global
        # pts-dts offset onto its dts-keyed index, so with variable frame rate a key frame's own pts can
        # land a whole GOP early, while the target's pts lands on its key frame; pts-indexed containers
        # (Matroska) land on the key frame either way. Should that land past the target, the key frame's
        # pts cannot.
        for timestamp in (index.pts[target], index.pts[key_ordinals[k]]):
            if got is not _LATE:
                break
            container.seek(timestamp, backward=True, any_frame=False, stream=stream)
            stats.seeks += 1
            frames = _decoded_frames(container, stream, keep_pts)
            got, last = _decode_forward(frames, target, ordinal_of, -1, stats)
        if got is _LATE:
            return None
        if got is None:
            break  # the decoder ran dry: the caller reports the missing frames
        out[target] = got
    return out


def _decode_forward(frames, target: int, ordinal_of: dict, last: int, stats):
    """Decode up to the frame at ordinal ``target``; returns ``(rgb (H, W, 3) | None | _LATE, last ordinal)``.

    None: the decoder ran dry first. _LATE: a frame after the target, or one with an unknown pts, came first.
    """
    for frame in frames:
        stats.frames_decoded += 1
        ordinal = ordinal_of.get(frame.pts)
        if ordinal is None or ordinal > target:
            return _LATE, last
        last = ordinal
        if ordinal == target:
            return _to_rgb(frame), last
    return None, last


def _decode_sequential(container, stream, wanted, stats) -> dict[int, np.ndarray]:
    """The reference reader: decode from frame 0, keep the sampled ordinals, stop after the last one."""
    keep, out = set(wanted), {}
    for ordinal, frame in enumerate(_decoded_frames(container, stream)):
        stats.frames_decoded += 1
        if ordinal in keep:
            out[ordinal] = _to_rgb(frame)
        if ordinal >= wanted[-1]:
            break
    return out


def _decoded_frames(container, stream, keep_pts: frozenset | None = None):
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
        if keep_pts is not None:
            skip = "DEFAULT" if packet.pts in keep_pts else "NONREF"
            if context.skip_frame != skip:
                context.skip_frame = skip
        yield from packet.decode()


def _index_packets(container, stream) -> _PacketIndex:
    """Demux (no decoding) the video stream: frame count, pts of each output frame, key frames."""
    pts, key_pts, count = [], [], 0
    leading_key = False  # a key frame before the edit list's start (a stream-copy cut): it starts frame 0
    # A truncated file simply ends early here; a demuxer error mid-file propagates (→ MediaError).
    for packet in container.demux(stream):
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


def _open_container(source: Source):
    try:
        return av.open(_file_arg(source), mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        kind = _container_kind(source)
        if kind:
            raise MediaError(f"the {kind} file could not be read; it is truncated or corrupt ({exc})") from exc
        raise UnsupportedMediaError(f"the data is not a video or image format this server reads ({exc})") from exc


def _video_stream(container, threads: int):
    """The first real video stream (cover art in audio files does not count), set up for decoding."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            break
    else:
        raise UnsupportedMediaError("the file has no video stream")
    if stream.codec_context is None:  # PyAV found no decoder for the stream's codec
        raise UnsupportedMediaError("the video's codec is not one this server can decode")
    _check_size(stream.codec_context.width, stream.codec_context.height, what="the video")
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = max(1, threads)
    return stream


def _to_rgb(frame) -> np.ndarray:
    """One decoded frame → ``(H, W, 3)`` uint8 RGB, upright (display-matrix rotation applied)."""
    _check_size(frame.width, frame.height, what="the video")
    rgb = frame.to_ndarray(format="rgb24")  # the reference reader's conversion, for identical pixels
    turns = round((frame.rotation or 0) / 90) % 4  # counter-clockwise quarter turns
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _container_kind(source: Source) -> str | None:
    """A name for a container recognised by its magic bytes, to tell 'truncated' from 'not a video'."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        head = bytes(source[:12])
    else:
        with open(source, "rb") as f:
            head = f.read(12)
    if head[4:8] == b"ftyp":
        return "MP4/MOV"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska/WebM"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    return None


# --- decord ---------------------------------------------------------------------------------------------


def _decode_decord(source, num_frames, max_frames_total, threads, stats) -> np.ndarray:
    try:
        import decord
        from decord._ffi.base import DECORDError
    except ImportError as exc:
        raise ImportError("backend='decord' needs decord: pip install 'aurora-serve[decord]'") from exc
    stats.strategy = "decord"
    with _open_container(source) as container:  # same errors and size limits as PyAV, before decoding
        _video_stream(container, threads)
    try:
        reader = decord.VideoReader(_file_arg(source), ctx=decord.cpu(0), num_threads=max(1, threads))
        total = stats.total_frames = len(reader)
        if max_frames_total is not None and total > max_frames_total:
            raise MediaTooLargeError(f"the video has {total} frames; the limit is {max_frames_total}")
        wanted = sample_indices(total, num_frames)
        frames = reader.get_batch(wanted).asnumpy()
    except (DECORDError, RuntimeError, AssertionError) as exc:  # decord asserts T > 0 on open
        raise MediaError(f"the video could not be decoded by decord ({exc})") from exc
    return frames  # stats.frames_decoded stays 0: decord does not say how many frames it decoded


# --- shared ---------------------------------------------------------------------------------------------


def _file_arg(source: Source):
    """What PyAV / Pillow / decord open: a file object over bytes, or a path that must exist."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(source)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise MediaError(f"media file not found: {path}")
        return path
    raise TypeError(f"media source must be bytes or a path, got {type(source).__name__}")


def _check_size(width: int, height: int, *, what: str) -> None:
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise MediaTooLargeError(
            f"{what} is {width}x{height}; the limits are {MAX_SIDE} px per side and "
            f"{MAX_PIXELS // 1_000_000} Mpx"
        )


def _is_image(source: Source) -> bool:
    """True when Pillow recognises the header (it reads only the first bytes)."""
    try:
        with Image.open(_file_arg(source)):
            return True
    except Image.DecompressionBombError:
        return True  # still an image: decode_image reports it as too large
    except OSError:  # includes UnidentifiedImageError
        return False
