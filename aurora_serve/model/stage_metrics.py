"""Stage metrics measured where the work happens: media preparation in the processor (the server's process),
the vision tower, merges and prefill in the model (the scheduler's process).

Both use prometheus_client's default registry of their process. The server points ``PROMETHEUS_MULTIPROC_DIR``
at a directory before the engine starts, so the scheduler (which imports prometheus_client after that) writes
its samples there and the server's ``/metrics`` merges them (``api.metrics``); the processor's stay in the
server's own registry. On CUDA a stage is timed with events read once they have completed, so timing never
makes the host wait for the device.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque

from prometheus_client import Counter, Histogram

SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40)
FRAMES = (1, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
BYTES = (2**18, 2**19, 2**20, 2**21, 2**22, 2**23, 2**24, 2**25, 2**26, 2**27)

# --- processor side, per media item prepared (cache misses) --------------------------------------------------
decode = Histogram("aurora_media_decode_seconds", "Demux + decode of the sampled frames, per item", ["kind"],
                   buckets=SECONDS)
preprocess = Histogram("aurora_media_preprocess_seconds", "Resize + crop of the sampled frames, per item", ["kind"],
                       buckets=SECONDS)
frames_decoded = Histogram("aurora_media_frames_decoded", "Frames the decoder decoded, per item", ["kind"],
                           buckets=FRAMES)
handoff_bytes = Histogram("aurora_media_handoff_bytes", "Pixel bytes handed to the scheduler, per item", ["kind"],
                          buckets=BYTES)
cache = Counter("aurora_media_cache_requests", "Processed-media cache lookups", ["result"])

# --- model side, per forward ------------------------------------------------------------------------------
vision = Histogram("aurora_vision_seconds", "Vision tower + projector, per batch of media items", buckets=SECONDS)
merge = Histogram("aurora_merge_seconds", "Token merging inside the vision tower, per batch of media items",
                  buckets=SECONDS)
prefill = Histogram("aurora_prefill_seconds", "Model forward of a prefill batch (vision + LLM)", buckets=SECONDS)

PROCESSOR_FAMILIES = ("aurora_media_decode_seconds", "aurora_media_preprocess_seconds", "aurora_media_frames_decoded",
                      "aurora_media_handoff_bytes", "aurora_media_cache_requests")
MODEL_FAMILIES = ("aurora_vision_seconds", "aurora_merge_seconds", "aurora_prefill_seconds")


class StageTimer:
    """Times code that runs on ``device`` into ``histogram``; ``accumulate`` sums several spans into one sample."""

    def __init__(self, histogram: Histogram):
        self.histogram = histogram
        self._pending: deque = deque()  # CUDA event pairs not yet read

    @contextlib.contextmanager
    def time(self, device):
        spans = self.spans(device)
        with spans.span():
            yield
        spans.done()

    def spans(self, device) -> "_Spans":
        return _Spans(self, device)

    def _drain(self) -> None:
        while self._pending and self._pending[0][-1][1].query():
            pairs = self._pending.popleft()
            self.histogram.observe(sum(start.elapsed_time(end) for start, end in pairs) / 1000)


class _Spans:
    def __init__(self, timer: StageTimer, device):
        self.timer, self.cuda = timer, getattr(device, "type", device) == "cuda"
        self.seconds, self.pairs = 0.0, []

    @contextlib.contextmanager
    def span(self):
        if self.cuda:
            import torch

            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self.pairs.append((start, end))
        else:
            started = time.perf_counter()
            yield
            self.seconds += time.perf_counter() - started

    def done(self) -> None:
        if self.pairs:
            self.timer._pending.append(self.pairs)
            self.timer._drain()
        elif not self.cuda:
            self.timer.histogram.observe(self.seconds)
