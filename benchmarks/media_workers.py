"""The workers dimension of bench_media: N items of one clip prepared by a process pool of 1 and of 2 workers.

The hook for a media process pool: each worker runs the production per-item function (``media_paths.prepare``
with ``PRODUCTION``: identity, seek decode with per-frame crops, the shared-memory hand-off) on bytes it holds,
and returns only its numbers, so what is timed is the preparation itself, not moving pixels back through the
pool's pipe (a pool in the server would hand its crops to the scheduler the same way: through shared memory).
One pool of the largest size is started and warmed before timing (spawned: the parent holds threads); a batch with
n workers keeps at most n items in flight, so it uses n of the pool's processes. Batches alternate between sizes
round by round; the speed-up is the median batch wall time with 1 worker over that with 2.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

_ITEM: tuple[bytes, str] | None = None


def _init(path: str, kind: str) -> None:
    global _ITEM
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    _ITEM = (Path(path).read_bytes(), kind)
    _item(0)  # imports and first-call costs, before any timed batch


def _ready(_: int) -> int:
    time.sleep(0.2)  # long enough that every worker, not one fast one, answers the readiness probe
    return os.getpid()


def _item(_: int) -> float:
    """Production per-item work on the worker's bytes; its process CPU seconds."""
    from .media_paths import PRODUCTION, prepare

    start = time.process_time()
    prepare(PRODUCTION, *_ITEM)
    return time.process_time() - start


def _batch(pool: ProcessPoolExecutor, workers: int, items: int) -> list[float]:
    """``items`` items with at most ``workers`` in flight; each item's CPU seconds."""
    pending, cpus = set(), []
    for i in range(items):
        if len(pending) >= workers:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            cpus += [f.result() for f in done]
        pending.add(pool.submit(_item, i))
    return cpus + [f.result() for f in wait(pending)[0]]


def run_workers(path: Path, kind: str, counts: list[int], items: int, rounds: int) -> dict:
    """Batch wall time, items/s and CPU per item for each number of workers; ``speedup_2_vs_1`` when both ran."""
    context = multiprocessing.get_context("spawn")
    size = max(counts)
    walls: dict[int, list[float]] = {n: [] for n in counts}
    cpus: dict[int, list[float]] = {n: [] for n in counts}
    load_before = os.getloadavg()
    with ProcessPoolExecutor(size, mp_context=context, initializer=_init, initargs=(str(path), kind)) as pool:
        while len(set(pool.map(_ready, range(4 * size)))) < size:
            pass
        for r in range(rounds):
            for n in counts[r % len(counts):] + counts[: r % len(counts)]:
                start = time.perf_counter()
                cpus[n] += _batch(pool, n, items)
                walls[n].append(time.perf_counter() - start)
    out = {"clip": Path(path).name, "items_per_batch": items, "rounds": rounds,
           "load_average_before_after": [load_before, os.getloadavg()], "per_pool": []}
    for n in counts:
        wall = statistics.median(walls[n])
        out["per_pool"].append({"workers": n, "batch_wall_s": wall, "items_per_s": items / wall,
                                "cpu_per_item_s": statistics.median(cpus[n]),
                                "batch_wall_by_round_s": [round(w, 3) for w in walls[n]]})
    if 1 in walls and 2 in walls:
        out["speedup_2_vs_1"] = round(statistics.median(walls[1]) / statistics.median(walls[2]), 3)
    return out
