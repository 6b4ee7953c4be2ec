"""The run loop over a scripted backend (no engine): bounded in-flight requests, lazy input, flat memory, stops,
fatal errors, resume selection."""

from __future__ import annotations

import asyncio
import tracemalloc

import pytest

from aurora_serve.batch.backend import Backend, FatalError
from aurora_serve.batch.runner import Skipped, Stop, run_tasks, select
from aurora_serve.batch.tasks import Defaults, Task, make_task
from aurora_serve.errors import MediaError
from aurora_serve.media.fetch import FetchLimits
from aurora_serve.media.item import MediaPolicy


class Scripted(Backend):
    """Captions after ``delay`` s; ids containing "bad" are media errors, "fatal" ends the run."""

    def __init__(self, delay: float = 0.01):
        super().__init__(MediaPolicy(), FetchLimits(), {})
        self.delay, self.running, self.most, self.cancelled = delay, 0, 0, 0

    async def generate(self, task, item, prompt):
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1
        if "bad" in task.id:
            raise MediaError("the video is corrupt")
        if "fatal" in task.id:
            raise FatalError("engine gone")
        return {"caption": f"caption of {task.id}", "frames": 8, "visual_tokens": 8}


def tasks(n: int, pulled: list | None = None, name=lambda i: f"t{i}"):
    for i in range(n):
        if pulled is not None:
            pulled.append(i)
        yield Task(name(i), "", None, {}, data=b"\x00" * 64)


def collect(gen) -> list:
    async def go():
        return [pair async for pair in gen]
    return asyncio.run(go())


def test_requests_in_flight_are_bounded_and_the_input_is_pulled_lazily():
    backend, pulled = Scripted(delay=0.02), []

    async def go():
        seen = []
        async for position, row in run_tasks(tasks(40, pulled), backend, max_in_flight=4):
            seen.append(position)
            assert len(pulled) <= len(seen) + 4 + 1  # never reads far ahead of what it can run
        return seen

    seen = asyncio.run(go())
    assert sorted(seen) == list(range(40)) and backend.most == 4


def test_a_bad_row_is_an_error_row_and_the_others_are_captioned():
    rows = [row for _, row in collect(run_tasks(tasks(5, name=lambda i: "bad" if i == 2 else f"t{i}"), Scripted()))]
    errors = {r["id"]: r["error"] for r in rows}
    assert errors["bad"] == {"type": "invalid_media", "message": "the video is corrupt"}
    assert sum(e is None for e in errors.values()) == 4


def test_a_stop_takes_no_new_rows_and_lets_in_flight_ones_finish():
    backend = Scripted(delay=0.3)

    async def go():
        stop, out = Stop.new(grace=5), []
        async for _, row in run_tasks(tasks(100), backend, max_in_flight=3, stop=stop):
            out.append(row)
            stop.asked.set()
        return out

    rows = asyncio.run(go())
    assert len(rows) == 3 and backend.cancelled == 0


def test_after_the_grace_period_in_flight_rows_are_cancelled_and_not_written():
    backend = Scripted(delay=30)

    async def go():
        stop = Stop.new(grace=0.2)
        asyncio.get_running_loop().call_later(0.1, stop.asked.set)
        return [row async for _, row in run_tasks(tasks(10), backend, max_in_flight=2, stop=stop)]

    assert asyncio.run(go()) == [] and backend.cancelled == 2


def test_a_fatal_error_ends_the_run_after_the_finished_rows():
    backend = Scripted(delay=0.01)
    gen = run_tasks(tasks(50, name=lambda i: "fatal" if i == 10 else f"t{i}"), backend, max_in_flight=2)
    out = []

    async def go():
        async for _, row in gen:
            out.append(row)

    with pytest.raises(FatalError):
        asyncio.run(go())
    assert 8 <= len(out) < 50 and all(r["id"] != "fatal" for r in out)


def test_select_skips_done_other_shards_and_repeats():
    rows = [make_task({"path": p, "id": i}, p, p, Defaults()) for p, i in
            [("a", "1"), ("b", "2"), ("c", "3"), ("a", "1"), ("d", "4")]]
    skipped = Skipped()
    kept = [t.id for t in select(rows, {"2"}, None, skipped)]
    assert kept == ["1", "3", "4"] and (skipped.done, skipped.repeated) == (1, 1)
    halves = [[t.id for t in select(rows, set(), (k, 2), Skipped())] for k in (0, 1)]
    assert sorted(halves[0] + halves[1]) == ["1", "2", "3", "4"] and halves[0] and halves[1]


def test_memory_stays_flat_over_the_number_of_rows():
    """Rows are handed on as they finish, not kept: 10x the rows, about the same peak (the seen-id set, 8-byte
    digests, is what grows)."""
    def peak(n: int) -> int:
        async def consume() -> int:
            seen = 0
            async for _ in run_tasks(tasks(n), Scripted(delay=0), max_in_flight=8):
                seen += 1
            return seen

        tracemalloc.start()
        total = asyncio.run(consume())
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert total == n
        return size

    small, large = peak(500), peak(5000)
    assert large < small * 1.5 + 256 * 1024, (small, large)
