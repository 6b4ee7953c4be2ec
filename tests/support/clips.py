"""Test media made here with PyAV and Pillow (never committed binaries).

- ``make_video`` / ``make_image``: varied, seeded content, so token merging has work to do.
- ``encode``: clips whose frames carry their own index as ten black/white blocks (``frame_rgb``,
  ``frame_index``), so a decoder test can read back WHICH frames were returned, not only how many.
- Malformed media and wire helpers: ``zero_frame_mp4``, ``huge_png_header``, ``empty_video_with_audio``,
  ``data_url``.
"""

from __future__ import annotations

import base64
import io
import os
import struct
import tempfile
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from aurora_serve.media.decode import DecodeStats, decode_video


def _frame(rng: np.random.Generator, i: int, w: int, h: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    base = rng.integers(0, 256, 3)
    img = np.stack([(xx * (c + 1) + yy * (3 - c) + 9 * i + base[c]) % 256 for c in range(3)], axis=-1)
    x0, y0 = (i * 7) % max(1, w - w // 4), (i * 5) % max(1, h - h // 4)
    img[y0 : y0 + h // 4, x0 : x0 + w // 4] = rng.integers(0, 256, 3)  # a moving block
    return img.astype(np.uint8)


def make_video(path: Path | None, frames: int = 24, w: int = 160, h: int = 120, seed: int = 0, fps: int = 24) -> bytes:
    """An H.264 MP4 (mpeg4 if libx264 is missing); written to ``path`` when given; returns the bytes."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        try:
            stream = out.add_stream("libx264", rate=fps)
        except Exception:  # codec availability depends on the PyAV build
            stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(_frame(rng, i, w, h), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def make_image(path: Path | None, w: int = 200, h: int = 150, seed: int = 0, fmt: str = "JPEG") -> bytes:
    data_io = io.BytesIO()
    Image.fromarray(_frame(np.random.default_rng(seed), seed, w, h)).save(data_io, format=fmt)
    data = data_io.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


W, H = 160, 96  # 10 index blocks of 16 px across the top


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


def decode_both(data, num_frames=8) -> tuple[np.ndarray, DecodeStats, np.ndarray, DecodeStats]:
    seek_stats, seq_stats = DecodeStats(), DecodeStats()
    seek = decode_video(data, num_frames, stats=seek_stats)
    seq = decode_video(data, num_frames, strategy="sequential", stats=seq_stats)
    return seek, seek_stats, seq, seq_stats


def data_url(data: bytes, mime: str = "video/mp4") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def zero_frame_mp4() -> bytes:
    """An MP4 whose video stream holds no frames (header and track, no samples)."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()  # write the header; no frame is ever encoded
    return buf.getvalue()


def huge_png_header() -> bytes:
    """A valid 1×1 PNG whose header claims 60000×60000 pixels (a decompression bomb)."""
    png = make_image(None, w=1, h=1, fmt="PNG")
    ihdr_at = png.index(b"IHDR")
    body = bytearray(png[ihdr_at:ihdr_at + 17])
    body[4:12] = struct.pack(">II", 60000, 60000)
    crc = struct.pack(">I", zlib.crc32(bytes(body)) & 0xFFFFFFFF)
    return png[:ihdr_at] + bytes(body) + crc + png[ihdr_at + 21:]
