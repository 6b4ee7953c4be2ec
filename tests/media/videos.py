"""Media made with PyAV and Pillow for the tests of ``aurora_serve.media``'s decoders.

Each frame carries its own index as ten black/white blocks, so a test can read back WHICH frames were
returned, not only how many.
"""

from __future__ import annotations

import io
import os
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from aurora_serve.media.decode import DecodeStats, decode_video

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
