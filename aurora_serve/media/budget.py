"""How much work decoding one request's media may do, checked inside every decode loop.

Per item: frames fed to the decoder and wall-clock seconds (from when its decode starts). Per request: the
pixels its items decode (frames × width × height, claimed before decoding from the headers) and whether the
request is still wanted (set when it is dropped: the loops stop at their next packet and free their worker).
Over a budget is a 413; a dropped request raises ``DecodeCancelled``, which nobody is waiting to read.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from aurora_serve.errors import MediaTooLargeError


class DecodeCancelled(Exception):
    """The request was dropped while its media was being decoded."""


@dataclass
class RequestBudget:
    """What one request's items share: a pixel budget and a cancellation flag."""

    max_pixels: int | None = None  # all the request's frames together
    max_frame_pixels: int | None = None  # one frame or image (None: media.source.MAX_PIXELS)
    cancelled: threading.Event = field(default_factory=threading.Event)
    _pixels: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def claim_pixels(self, pixels: int) -> None:
        with self._lock:
            self._pixels += pixels
            total = self._pixels
        self._check(total)

    def _check(self, total: int) -> None:
        if self.max_pixels is not None and total > self.max_pixels:
            raise MediaTooLargeError(
                f"the request's media decode to {total / 1e6:.0f} Mpx (frames × width × height); the limit is "
                f"{self.max_pixels / 1e6:.0f} Mpx: send fewer frames, smaller media or fewer items",
                code="pixel_budget_exceeded")


class DecodeBudget:
    """One item's budget; ``spend`` per packet fed to the decoder, ``check`` anywhere else in a loop."""

    def __init__(self, max_decoded_frames: int | None = None, seconds: float | None = None,
                 request: RequestBudget | None = None):
        self.max_decoded_frames, self.seconds = max_decoded_frames, seconds
        self.request = request or RequestBudget()
        self.decoded = 0
        self._deadline = None if seconds is None else time.monotonic() + seconds

    def spend(self, frames: int = 1) -> None:
        self.decoded += frames
        if self.max_decoded_frames is not None and self.decoded > self.max_decoded_frames:
            raise MediaTooLargeError(
                f"sampling this video needs more than {self.max_decoded_frames} frames decoded (its key frames "
                "are too far apart for the frames asked for); send fewer frames or re-encode it with key frames "
                "every few seconds", code="decode_budget_exceeded")
        self.check()

    def check(self) -> None:
        if self.request.cancelled.is_set():
            raise DecodeCancelled()
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise MediaTooLargeError(f"decoding this media took longer than {self.seconds:g} s; send fewer frames "
                                     "or a smaller video", code="decode_timeout")

    def claim_pixels(self, pixels: int) -> None:
        self.request.claim_pixels(pixels)

    @property
    def max_frame_pixels(self) -> int | None:
        return self.request.max_frame_pixels
