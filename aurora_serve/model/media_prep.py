"""A request's media items → their identities and uint8 crops: the processed-media cache first, then
decoding in media worker processes (or SGLang's IO threads with ``--media-workers 0``), under the request's
budgets, with the stage metrics recorded where the work is known.

When the request is dropped or one of its items fails, the others are told to stop (their decoders check
at every packet), so abandoned work never holds a worker.
"""

from __future__ import annotations

import asyncio
import os

import av
import PIL
import torch

from aurora_serve.config import ModelRuntime
from aurora_serve.errors import InvalidRequestError
from aurora_serve.media.item import MediaItem
from aurora_serve.media.workers import ItemLimits, LocalRequest, MediaWorkers
from aurora_serve.model import stage_metrics
from aurora_serve.model.media_cache import ProcessedMediaCache, media_digest

MAX_AUTO_WORKERS = 32


def worker_count(runtime: ModelRuntime) -> int:
    """``--media-workers``, or one per CPU this process may run on (its affinity: a cpuset, ``taskset``) up to
    ``MAX_AUTO_WORKERS`` when not given. A CPU quota (Kubernetes' limits) is not visible here: deployments set
    the flag from the pod's CPU (deploy/k8s does)."""
    if runtime.media_workers is not None:
        return runtime.media_workers
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cpus, MAX_AUTO_WORKERS))


class MediaPreparer:
    def __init__(self, runtime: ModelRuntime, image_size: int, io_executor):
        self.runtime, self.size, self.io_executor = runtime, image_size, io_executor
        self.pipeline = _pipeline(runtime.decode_backend)
        self.cache = ProcessedMediaCache(runtime.media_cache_mb * 1024 * 1024)
        self.limits = ItemLimits(runtime.max_decoded_frames, runtime.decode_timeout, runtime.max_frame_pixels,
                                 runtime.max_request_pixels)
        workers = worker_count(runtime)
        self.workers = MediaWorkers(workers, self.limits, runtime.media_worker_memory_mb or None) if workers else None

    def key(self, m: MediaItem) -> str:
        """The media's identity: its bytes (or the caller's id) and everything that turns them into pixels."""
        media = f"id:{m.media_scope}/{m.media_id}" if m.media_id is not None else media_digest(m.data)
        return f"{media}:{m.kind}:{m.sampling.identity()}:{self.size}:{self.pipeline}"

    async def prepare_all(self, media: list[MediaItem]) -> list[tuple[str, torch.Tensor]]:
        """Every item's identity and ``[F, S, S, 3]`` uint8 crops, prepared concurrently."""
        opened = self.workers.request() if self.workers is not None else LocalRequest(self.io_executor, self.limits)
        with opened as request:
            tasks = [asyncio.ensure_future(self._prepare(m, request)) for m in media]
            try:
                return await asyncio.gather(*tasks)
            except BaseException:
                request.cancel()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)  # each knows how to let its work go
                raise

    async def _prepare(self, m: MediaItem, request) -> tuple[str, torch.Tensor]:
        loop = asyncio.get_running_loop()
        key = await loop.run_in_executor(self.io_executor, self.key, m)  # hashing megabytes: off the loop
        pixels = self.cache.get(key)
        stage_metrics.cache.labels("hit" if pixels is not None else "miss").inc()
        if pixels is None and m.data is None:
            raise InvalidRequestError(
                f"no cached {m.kind} has uuid {m.media_id!r}"
                + (f" with {m.sampling.describe()}" if m.kind == "video" else "")
                + " on this server (never sent, evicted, or sent to another replica); send the url with the uuid",
                param="uuid", code="media_not_cached",
            )
        if pixels is None:
            prepared = await request.prepare(m.data, m.kind, m.sampling, self.runtime.decode_backend, self.size)
            pixels = torch.from_numpy(prepared.crops)
            self.cache.put(key, pixels)
            _observe(m.kind, prepared, pixels)
        return key, pixels

    def close(self) -> None:
        if self.workers is not None:
            self.workers.shutdown()


def _observe(kind: str, prepared, pixels: torch.Tensor) -> None:
    stage_metrics.decode.labels(kind).observe(prepared.seconds - prepared.crop_seconds)
    stage_metrics.preprocess.labels(kind).observe(prepared.crop_seconds)
    stage_metrics.frames_decoded.labels(kind).observe(prepared.frames_decoded)
    stage_metrics.handoff_bytes.labels(kind).observe(pixels.numel() * pixels.element_size())


def _pipeline(decode_backend: str) -> str:
    """What else turns the same bytes into pixels: part of the media identity (a decoder upgrade changes it)."""
    if decode_backend == "decord":
        import decord

        return f"decord{decord.__version__}-pillow{PIL.__version__}"
    return f"{decode_backend}-av{av.__version__}-pillow{PIL.__version__}"
