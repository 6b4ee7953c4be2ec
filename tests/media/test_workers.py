"""Media worker processes: same crops as in-process, budgets and cancellation across the process boundary,
and a worker that dies is replaced (its request gets a 503; the next one is served)."""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np
import pytest

from aurora_serve.errors import MediaTooLargeError, ServiceUnavailableError
from aurora_serve.media.budget import DecodeBudget, DecodeCancelled
from aurora_serve.media.item import Sampling
from aurora_serve.media.workers import ItemLimits, MediaWorkers, prepare
from benchmarks.hostile import uhd_frames
from tests.support.clips import make_video

LIMITS = ItemLimits(max_decoded_frames=8192, decode_timeout=30, max_frame_pixels=40_000_000,
                    max_request_pixels=3840 * 2160 * 24)


class Crash:
    """Unpickling it in a worker ends the worker on the spot (what a decoder crash looks like)."""

    def __reduce__(self):
        return os._exit, (3,)


@pytest.fixture(scope="module")
def workers():
    pool = MediaWorkers(2, LIMITS, memory_mb=4096)
    yield pool
    pool.shutdown()


def prepare_once(workers: MediaWorkers, data, frames: int):
    async def run():
        with workers.request() as slot:
            return await slot.prepare(data, "video", Sampling(num_frames=frames), "pyav", 378)

    return asyncio.run(run())


def test_workers_return_the_in_process_crops(workers):
    clip = make_video(None, frames=20, seed=3)
    local = prepare(clip, "video", Sampling(num_frames=4), "pyav", 378, DecodeBudget())
    remote = prepare_once(workers, clip, 4)
    assert np.array_equal(local.crops, remote.crops) and remote.crops.shape == (4, 378, 378, 3)


def test_the_request_pixel_budget_spans_workers(workers):
    clip = uhd_frames(16)

    async def two_items():  # 16 + 16 frames of 4K against a 24-frame budget, on two processes at once
        with workers.request() as slot:
                return await asyncio.gather(*(slot.prepare(clip, "video", Sampling(num_frames=16), "pyav", 378)
                                          for _ in range(2)), return_exceptions=True)

    results = asyncio.run(two_items())
    refused = [r for r in results if isinstance(r, MediaTooLargeError)]
    assert len(refused) == 1 and refused[0].code == "pixel_budget_exceeded", results


def test_a_cancelled_request_frees_its_worker_and_slot(workers):
    clip = uhd_frames(64)

    async def cancel_midway():
        with workers.request() as slot:
            task = asyncio.ensure_future(slot.prepare(clip, "video", Sampling(num_frames=24), "pyav", 378))
            await asyncio.sleep(1.0)
            task.cancel()
            started = time.monotonic()
            with pytest.raises(asyncio.CancelledError):
                await task
        while not slot.released:  # the worker stops at its next packet, then the slot is free again
            await asyncio.sleep(0.01)
        return time.monotonic() - started

    free = len(workers._free)
    assert asyncio.run(cancel_midway()) < 1.0
    assert len(workers._free) == free


def test_a_dead_worker_is_replaced(workers):
    with pytest.raises(ServiceUnavailableError) as info:
        prepare_once(workers, Crash(), 2)
    assert info.value.code == "media_worker_died" and info.value.status == 503
    clip = make_video(None, frames=10, seed=4)
    again = prepare_once(workers, clip, 2)
    assert again.crops.shape == (2, 378, 378, 3)




def test_a_slot_is_freed_however_its_request_ends(workers):
    """A request whose items never reach a worker (all cached) frees its slot too: before, it leaked one
    per request, and the server answered every media request with a 503 once the 4096 slots were gone."""
    free = len(workers._free)
    for _ in range(3):
        with workers.request():
            pass  # every item a cache hit
    with pytest.raises(ValueError):
        with workers.request():
            raise ValueError("an item refused before decoding")
    prepare_once(workers, make_video(None, frames=6, seed=5), 2)
    assert len(workers._free) == free


def test_cancelling_a_finished_request_leaves_the_slots_next_owner_alone(workers):
    """A request may be told to stop after its slot is free again (one item failed after the others were
    done): the flag must not land on the request that holds the slot now."""
    with workers.request() as first:
        pass
    with workers.request() as second:
        assert second.slot == first.slot  # the free list hands the same slot out again
        first.cancel()
        assert workers._flags[second.slot] == 0
        clip = make_video(None, frames=6, seed=6)
        out = asyncio.run(second.prepare(clip, "video", Sampling(num_frames=2), "pyav", 378))
    assert out.crops.shape == (2, 378, 378, 3)


def test_the_default_worker_count_follows_the_cpus_the_server_may_use():
    """One worker per CPU of the process's affinity (a cpuset or taskset), not per core of the machine."""
    import subprocess
    import sys

    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from aurora_serve.config import ModelRuntime; from aurora_serve.model.media_prep import worker_count; "
            "print(worker_count(ModelRuntime()), worker_count(ModelRuntime(media_workers=3)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "3"]
