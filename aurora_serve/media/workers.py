"""Media preparation (decode, sample, crop) for one item, in this process or in a pool of worker processes.

Decoding holds the GIL for most of its time (PyAV's demux/decode calls and the frame conversion), so threads
do not add cores; worker processes do, and a decoder that crashes or allocates without bound on a hostile
file takes only its worker down (the pool is rebuilt; the request gets a 503 to retry) under an address-space
limit. Budgets cross the process boundary through shared memory: one slot per request holds its
cancellation flag and the pixels its items have claimed (added under a file lock: a multiprocessing lock
would be a named semaphore, which spawned workers and Python's resource tracker handle badly).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np

from aurora_serve.errors import ServiceUnavailableError
from aurora_serve.media.budget import DecodeBudget, RequestBudget
from aurora_serve.media.decode import load_frames
from aurora_serve.media.item import Sampling
from aurora_serve.media.preprocess import clip_crop
from aurora_serve.media.sampling import DecodeStats

SLOTS = 4096  # requests with media in flight at once, at most (a slot is held until its items finish)


@dataclass(frozen=True)
class ItemLimits:
    max_decoded_frames: int | None
    decode_timeout: float | None
    max_frame_pixels: int | None
    max_request_pixels: int | None


@dataclass
class Prepared:
    """One item's crops ``[F, S, S, 3]`` uint8 and what making them cost."""

    crops: np.ndarray
    seconds: float  # wall time of decode + crop
    crop_seconds: float
    frames_decoded: int


def prepare(data, kind: str, sampling: Sampling, backend: str, size: int, budget: DecodeBudget) -> Prepared:
    """Decode ``data``'s sampled frames and crop each as it comes (``clip_crop``), under ``budget``."""
    started, stats, cropping = time.perf_counter(), DecodeStats(), [0.0]

    def crop(frame):
        t = time.perf_counter()
        out = clip_crop(frame, size)
        cropping[0] += time.perf_counter() - t
        return out

    crops = load_frames(data, kind, sampling, backend, budget=budget, transform=crop, stats=stats)
    return Prepared(crops, time.perf_counter() - started, cropping[0], stats.frames_decoded or len(crops))


class MediaWorkers:
    """A pool of ``workers`` processes preparing items; ``with request()`` opens one request's shared budget."""

    def __init__(self, workers: int, limits: ItemLimits, memory_mb: int | None = None):
        self.workers, self.limits, self.memory_mb = workers, limits, memory_mb
        # Fork is unsafe in a process with threads. Spawned workers are fresh interpreters (≈ 0.5 s to start,
        # once per pool), started with the parent's main module hidden. Not the fork server: it listens on a
        # Unix socket under TMPDIR, and a long TMPDIR (CI's, macOS's) is over the 108-byte limit of its path.
        context = multiprocessing.get_context("spawn")
        self._flags, self._pixels = context.RawArray("b", SLOTS), context.RawArray("q", SLOTS)
        fd, self._lock_path = tempfile.mkstemp(prefix="aurora-media-lock-")
        os.close(fd)
        self._context = context
        self._free = list(range(SLOTS))
        self._guard = threading.Lock()  # the free slots (held for microseconds, also on the event loop)
        self._rebuilding = threading.Lock()  # held while a new pool starts (half a second), off the loop
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        """A pool with every worker started (the pool starts them on its first tasks)."""
        pool = ProcessPoolExecutor(self.workers, mp_context=self._context, initializer=_init_worker,
                                   initargs=(self._flags, self._pixels, self._lock_path, self.memory_mb))
        with _main_hidden():
            futures = [pool.submit(os.getpid) for _ in range(self.workers)]
        for future in futures:
            future.result()
        return pool

    def request(self) -> "RequestSlot":
        with self._guard:
            if not self._free:
                raise ServiceUnavailableError("too many requests are preparing media; retry shortly")
            slot = self._free.pop()
        self._flags[slot], self._pixels[slot] = 0, 0
        return RequestSlot(self, slot)

    def _release(self, slot: int) -> None:
        with self._guard:
            self._free.append(slot)

    async def run(self, slot: int, *args) -> Prepared:
        pool = self._pool
        try:
            return await asyncio.wrap_future(pool.submit(_prepare_in_worker, slot, self.limits, *args))
        except BrokenProcessPool:
            await asyncio.to_thread(self._rebuild, pool)  # starting workers takes a second: off the loop
            raise ServiceUnavailableError("a media worker process died while decoding (this request's media or "
                                          "another's crashed the decoder); retry", code="media_worker_died") from None

    def _rebuild(self, broken: ProcessPoolExecutor) -> None:
        with self._rebuilding:
            if self._pool is broken:  # the first to notice rebuilds it
                self._pool = self._new_pool()
                broken.shutdown(wait=True)  # its other workers exit, its queues are released now

    def shutdown(self) -> None:
        """Stop every decode at its next packet and wait for the workers to exit. Waiting matters: the pool's
        queues hold semaphores registered with multiprocessing's resource tracker, and SGLang's shutdown
        kills every child process, the tracker included; released later, they make a new tracker print
        "process died unexpectedly" and a KeyError per semaphore at exit."""
        self._flags[:] = [1] * SLOTS
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None  # the queues go with the last reference, while the tracker still runs
        os.unlink(self._lock_path)


class LocalRequest:
    """The same interface without processes: items are prepared on ``executor``'s threads (``--media-workers 0``)."""

    def __init__(self, executor, limits: ItemLimits):
        self.executor, self.limits = executor, limits
        self.budget = RequestBudget(limits.max_request_pixels, limits.max_frame_pixels)

    def __enter__(self) -> "LocalRequest":
        return self

    def __exit__(self, *exc) -> None:
        pass  # nothing shared to free: the budget goes with the object

    def cancel(self) -> None:
        self.budget.cancelled.set()

    async def prepare(self, *args) -> Prepared:
        budget = DecodeBudget(self.limits.max_decoded_frames, self.limits.decode_timeout, self.budget)
        future = asyncio.get_running_loop().run_in_executor(self.executor, prepare, *args, budget)
        try:
            return await future
        except asyncio.CancelledError:
            self.cancel()
            raise


class RequestSlot:
    """One request's cancellation flag and pixel count in shared memory. Open it with ``with``: the slot is
    freed once the block is left *and* its last item's worker is done (a cancelled item's worker runs on
    until it sees the flag), never before, and nothing touches it after (it may be another request's then)."""

    def __init__(self, workers: MediaWorkers, slot: int):
        self.workers, self.slot = workers, slot
        self.pending, self.closed, self.released = 0, False, False

    def __enter__(self) -> "RequestSlot":
        return self

    def __exit__(self, *exc) -> None:
        self.closed = True
        self._release_when_idle()

    def _release_when_idle(self) -> None:
        if self.closed and self.pending == 0 and not self.released:
            self.released = True
            self.workers._release(self.slot)

    def cancel(self) -> None:
        if not self.released:
            self.workers._flags[self.slot] = 1

    async def prepare(self, *args) -> Prepared:
        self.pending += 1
        task = asyncio.ensure_future(self._run(*args))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            self.cancel()  # the shielded work goes on until the worker sees the flag, then frees the slot
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # its DecodeCancelled: expected
            raise

    async def _run(self, *args) -> Prepared:
        try:
            return await self.workers.run(self.slot, *args)
        finally:
            self.pending -= 1
            self._release_when_idle()


@contextlib.contextmanager
def _main_hidden():
    """Start processes without telling them the parent's main module: multiprocessing would run it again in
    each (a batch script or notebook cell without a ``__main__`` guard would start over)."""
    main = sys.modules["__main__"]
    saved = {name: getattr(main, name) for name in ("__file__", "__spec__") if hasattr(main, name)}
    for name in saved:
        delattr(main, name) if name == "__file__" else setattr(main, name, None)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(main, name, value)


# --- in the worker process ---------------------------------------------------------------------------------

_shared: dict = {}


def _init_worker(flags, pixels, lock_path: str, memory_mb: int | None) -> None:
    _shared.update(flags=flags, pixels=pixels, lock=os.open(lock_path, os.O_RDWR))
    if memory_mb:
        import resource

        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


class _SharedFlag:
    def __init__(self, slot: int):
        self.slot = slot

    def is_set(self) -> bool:
        return bool(_shared["flags"][self.slot])


class _SharedRequest(RequestBudget):
    """``RequestBudget`` whose flag and pixel count live in the pool's shared memory."""

    def __init__(self, slot: int, limits: ItemLimits):
        super().__init__(limits.max_request_pixels, limits.max_frame_pixels, _SharedFlag(slot))
        self.slot = slot

    def claim_pixels(self, pixels: int) -> None:
        fcntl.lockf(_shared["lock"], fcntl.LOCK_EX)
        try:
            _shared["pixels"][self.slot] += pixels
            total = _shared["pixels"][self.slot]
        finally:
            fcntl.lockf(_shared["lock"], fcntl.LOCK_UN)
        self._check(total)


def _prepare_in_worker(slot: int, limits: ItemLimits, data, kind, sampling, backend, size) -> Prepared:
    budget = DecodeBudget(limits.max_decoded_frames, limits.decode_timeout, _SharedRequest(slot, limits))
    return prepare(data, kind, sampling, backend, size, budget)
