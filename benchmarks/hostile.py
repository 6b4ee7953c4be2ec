"""A corpus of hostile media, generated (never committed): small files that are expensive to serve unless the
server bounds its work. Used by the hostile-media tests and the soak benchmark.

Each entry: ``name → (bytes, kind of part to send it as, options, expected status, expected error code)``.
The expected answers are those of a server with default settings, except where ``options`` lowers nothing:
every class here is refused (or, for the 4K clip, served within memory) with the defaults.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field

import av
import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Hostile:
    data: bytes
    part: str  # "video_url" | "image_url"
    status: int  # what a default server answers (200: served, within its memory bound)
    code: str | None
    options: dict = field(default_factory=dict)  # request-level options to send with it


def one_key_frame(frames: int = 20_000, side: int = 64) -> bytes:
    """Matroska: one H.264 key frame, then ``frames`` tiny P-frames; any sampled frame but the first needs
    every frame before it decoded (the audit's file had 100,000)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = side, side, "yuv420p"
        stream.options = {"preset": "ultrafast",
                          "x264-params": "keyint=infinite:min-keyint=infinite:scenecut=0:bframes=0"}
        image = np.zeros((side, side, 3), np.uint8)
        for i in range(frames):
            image[0, 0, 0] = i % 256  # a change per frame: a P-frame, but a tiny one
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def uhd_frames(frames: int = 64) -> bytes:
    """MP4: ``frames`` static 3840×2160 frames, a few KB; sampled all at once it was 3 GB of memory."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 3840, 2160, "yuv420p"
        stream.options = {"preset": "ultrafast", "x264-params": "keyint=8:bframes=0"}
        frame = av.VideoFrame.from_ndarray(np.full((2160, 3840, 3), 90, np.uint8), format="rgb24")
        for _ in range(frames):
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def claims_many_samples(valid_mp4: bytes, samples: int = 20_000_000) -> bytes:
    """A valid small MP4 whose ``stsz`` box says every sample is 1 byte and there are ``samples`` of them."""
    at = valid_mp4.index(b"stsz") + 4  # version/flags, sample_size, sample_count
    return valid_mp4[:at + 4] + struct.pack(">II", 1, samples) + valid_mp4[at + 12:]


def huge_png(side: int = 8000) -> bytes:
    """A solid ``side``×``side`` PNG: a few hundred KB that decode to ``side² × 3`` bytes."""
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (30, 60, 90)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


SDP = (b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=video 5004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n")
FFCONCAT = b"ffconcat version 1.0\nfile /etc/hostname\nfile pyproject.toml\n"
HLS = b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://127.0.0.1:9/segment.ts\n#EXT-X-ENDLIST\n"


def corpus(valid_mp4: bytes) -> dict[str, Hostile]:
    """One or more files per class of the audit; ``valid_mp4`` is any small good MP4 to corrupt."""
    return {
        "one key frame, 20k P-frames": Hostile(one_key_frame(), "video_url", 413, "decode_budget_exceeded",
                                               {"num_frames": 8}),
        "64 frames of 4K": Hostile(uhd_frames(), "video_url", 200, None, {"num_frames": 64, "token_kept_ratio": 0.1}),
        "20M samples claimed": Hostile(claims_many_samples(valid_mp4), "video_url", 413, "implausible_container"),
        "8000x8000 PNG": Hostile(huge_png(), "image_url", 413, "media_too_large"),
        "SDP text": Hostile(SDP, "video_url", 415, "unsupported_media"),
        "ffconcat text": Hostile(FFCONCAT, "video_url", 415, "unsupported_media"),
        "HLS playlist": Hostile(HLS, "video_url", 415, "unsupported_media"),
    }
