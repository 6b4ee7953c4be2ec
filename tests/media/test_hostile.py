"""Hostile media against the decoders with the server's default budgets: each class refused with its 4xx,
quickly, or (the 4K clip) decoded holding one full-size frame at a time; decodes stop when cancelled."""

from __future__ import annotations

import threading
import time
import tracemalloc

import numpy as np
import pytest

from aurora_serve.config import ModelRuntime
from aurora_serve.errors import MediaTooLargeError, UnsupportedMediaError
from aurora_serve.media.budget import DecodeBudget, DecodeCancelled, RequestBudget
from aurora_serve.media.containers import check_mp4_tables, sniff_container
from aurora_serve.media.decode import load_frames
from aurora_serve.media.image import sniff_kind
from aurora_serve.media.preprocess import clip_crop
from benchmarks import hostile
from tests.support.clips import encode, make_video

DEFAULTS = ModelRuntime()


def budget(request: RequestBudget | None = None, **override) -> DecodeBudget:
    request = request or RequestBudget(DEFAULTS.max_request_pixels, DEFAULTS.max_frame_pixels)
    return DecodeBudget(override.get("frames", DEFAULTS.max_decoded_frames),
                        override.get("seconds", DEFAULTS.decode_timeout), request)


def crop(frame):
    return clip_crop(frame, 378)


def test_each_class_gets_its_answer_quickly(hostile_corpus):
    for name, h in hostile_corpus.items():
        if h.status == 200:
            continue  # the 4K clip: below, with its memory measured
        started = time.monotonic()
        with pytest.raises((MediaTooLargeError, UnsupportedMediaError)) as info:
            load_frames(h.data, sniff_kind(h.data), h.options.get("num_frames", 8), budget=budget(), transform=crop)
        assert (info.value.status, info.value.code) == (h.status, h.code), name
        assert time.monotonic() - started < 10, name  # generous on a loaded 2-core machine; ~0.5 s here


def test_uhd_frames_are_cropped_as_they_are_decoded(hostile_corpus):
    """At most one full-size frame is alive at a time: the decode's own Python-side peak stays near one
    3840×2160×3 frame (24.9 MB) instead of the 16 the sample holds."""
    data, frame_bytes = hostile_corpus["64 frames of 4K"].data, 3840 * 2160 * 3
    tracemalloc.start()
    try:
        crops = load_frames(data, "video", 16, budget=budget(), transform=crop)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert crops.shape == (16, 378, 378, 3) and crops.dtype == np.uint8
    assert peak < 2.5 * frame_bytes, f"peak {peak / 1e6:.0f} MB"


def test_the_request_pixel_budget_covers_all_its_items(hostile_corpus):
    request = RequestBudget(max_pixels=3840 * 2160 * 20, max_frame_pixels=DEFAULTS.max_frame_pixels)
    load_frames(hostile_corpus["64 frames of 4K"].data, "video", 16, budget=budget(request), transform=crop)
    with pytest.raises(MediaTooLargeError) as info:  # 16 + 16 frames > 20 frames' worth
        load_frames(hostile_corpus["64 frames of 4K"].data, "video", 16, budget=budget(request), transform=crop)
    assert info.value.code == "pixel_budget_exceeded"


def test_the_deadline_stops_a_decode_in_its_loop(hostile_corpus):
    started = time.monotonic()
    with pytest.raises(MediaTooLargeError) as info:
        load_frames(hostile_corpus["64 frames of 4K"].data, "video", 64, budget=budget(seconds=0.3), transform=crop)
    assert info.value.code == "decode_timeout" and time.monotonic() - started < 3


def test_cancelling_a_request_stops_its_decode_at_the_next_packet(hostile_corpus):
    request = RequestBudget()
    outcome = {}

    def decode():
        try:
            load_frames(hostile_corpus["64 frames of 4K"].data, "video", 64, budget=budget(request), transform=crop)
            outcome["result"] = "finished"
        except DecodeCancelled:
            outcome["result"], outcome["at"] = "cancelled", time.monotonic()

    worker = threading.Thread(target=decode)
    worker.start()
    time.sleep(0.5)
    cancelled_at = time.monotonic()
    request.cancelled.set()
    worker.join(10)
    assert outcome["result"] == "cancelled" and outcome["at"] - cancelled_at < 0.5


@pytest.mark.parametrize("head, name", [
    (encode(3)[:64], "mov"), (encode(3, fmt="matroska")[:64], "matroska"), (encode(3, fmt="avi", codec="mpeg4")[:64], "avi"),
    (encode(3, fmt="h264")[:64], "h264"), (hostile.SDP, None), (hostile.FFCONCAT, None), (hostile.HLS, None),
    (b"<?xml version='1.0'?><MPD>", None), (b"", None),
])
def test_containers_are_told_from_their_first_bytes(head, name):
    assert sniff_container(head) == name


def test_mp4_tables_that_claim_more_than_their_box_holds_are_refused():
    import io
    import struct

    good = make_video(None, frames=6)
    check_mp4_tables(io.BytesIO(good), len(good))
    at = good.index(b"stco") + 8  # version/flags, then entry_count
    bad = good[:at] + struct.pack(">I", 1_000_000) + good[at + 4:]
    with pytest.raises(MediaTooLargeError, match="stco box claims 1000000 entries"):
        check_mp4_tables(io.BytesIO(bad), len(bad))
