"""Many requests in flight, a bounded number; rows out as they finish; stop on a signal with a grace period.

``run_tasks`` is the core the CLI, ``Captioner`` and the Ray actors share. It pulls tasks lazily (one at a time,
only when a slot is free), so memory holds at most ``max_in_flight`` tasks and their media whatever the input's
length. ``select`` drops the rows a rerun must skip (already in OUTPUT, another shard's, repeated ids).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
from dataclasses import dataclass, replace
from typing import AsyncIterator, Callable, Iterable, Iterator

from aurora_serve.batch.backend import Backend, FatalError
from aurora_serve.batch.tasks import Task, in_shard
from aurora_serve.errors import AuroraError, InvalidRequestError

logger = logging.getLogger(__name__)
POLL_S = 0.25  # how often an idle run looks at its stop flags and calls ``tick`` (flush a due chunk, log progress)


@dataclass
class Skipped:
    done: int = 0  # already in OUTPUT
    other_shard: int = 0
    repeated: int = 0  # an id seen earlier in this input


def select(tasks: Iterable[Task], done: set[str], shard: tuple[int, int] | None, skipped: Skipped) -> Iterator[Task]:
    """The tasks this run does: not in ``done``, in ``shard``, each id once (repeats are logged and dropped; 8-byte
    digests keep the seen-set small)."""
    seen: set[bytes] = set()
    for task in tasks:
        if not in_shard(task.id, shard):
            skipped.other_shard += 1
            continue
        if task.id in done:
            skipped.done += 1
            continue
        digest = hashlib.blake2b(task.id.encode(), digest_size=8).digest()
        if digest in seen:
            skipped.repeated += 1
            logger.warning("id %s appears again in the input; only its first row is captioned", task.id)
            continue
        seen.add(digest)
        yield task


@dataclass
class Stop:
    """``asked``: take no new rows; in-flight ones get ``grace`` seconds. ``now``: cancel in-flight ones."""

    asked: asyncio.Event
    now: asyncio.Event
    grace: float = 30.0

    @classmethod
    def new(cls, grace: float = 30.0) -> "Stop":
        return cls(asyncio.Event(), asyncio.Event(), grace)


async def run_tasks(tasks: Iterable[Task], backend: Backend, *, max_in_flight: int = 16,
                    window_seconds: float | None = None, skip: Callable[[str], bool] = lambda task_id: False,
                    stop: Stop | None = None, tick: Callable[[], None] | None = None
                    ) -> AsyncIterator[tuple[int, dict]]:
    """``(position of the task in tasks, output row)`` as rows finish. ``window_seconds``: a video task becomes
    a task per window (``skip(window id)`` drops finished ones). Raises ``FatalError`` after yielding the rows
    that finished before it; rows cancelled by a stop or a fatal error are not yielded."""
    stop = stop or Stop.new()
    slots = asyncio.Semaphore(max_in_flight)
    finished: collections.deque = collections.deque()
    wake = asyncio.Event()
    running: set[asyncio.Task] = set()

    async def one(position: int, task: Task, data) -> None:
        # A slot is freed when the row is handed on (below), not when it finishes: what the consumer has not taken
        # yet counts as in flight, so a slow consumer slows the input instead of piling up rows.
        try:
            finished.append((position, await backend.row(task, data)))
        except FatalError as e:
            finished.append((None, e))
        except BaseException:
            slots.release()
            raise
        finally:
            wake.set()

    async def produce() -> None:
        for position, task in enumerate(tasks):
            if stop.asked.is_set():
                return
            subtasks, data = await _expand(backend, task, window_seconds)
            for sub in subtasks:
                if sub is not task and skip(sub.id):
                    continue
                await slots.acquire()
                if stop.asked.is_set():
                    slots.release()
                    return
                job = asyncio.create_task(one(position, sub, data))
                running.add(job)
                job.add_done_callback(running.discard)

    producer = asyncio.create_task(produce())
    fatal, deadline = None, None
    loop = asyncio.get_running_loop()
    try:
        while True:
            while finished:
                position, row = finished.popleft()
                slots.release()
                if position is None:
                    fatal = fatal or row
                    stop.now.set()
                else:
                    yield position, row
            if producer.done() and not running and not finished:
                break
            if stop.asked.is_set() or stop.now.is_set():
                stop.asked.set()
                deadline = deadline or loop.time() + (0 if stop.now.is_set() else stop.grace)
                if stop.now.is_set() or loop.time() >= deadline:
                    await _cancel(running)  # then wait below: the producer needs the loop to see the stop
            if tick is not None:
                tick()
            wake.clear()
            try:
                await asyncio.wait_for(wake.wait(), POLL_S)
            except asyncio.TimeoutError:
                pass  # poll: stop flags, the grace deadline, the producer, tick
        producer.result()  # an error reading the input ends the run here, after the rows that finished
        if fatal is not None:
            raise fatal
    finally:
        producer.cancel()
        await _cancel(running | {producer})


async def _expand(backend: Backend, task: Task, window_seconds: float | None) -> tuple[list[Task], object]:
    """A task's windows (or the task itself); a video that cannot be read or windowed is one error row."""
    if not window_seconds or task.error is not None:
        return [task], None
    try:
        subtasks, data = await backend.expand(task, window_seconds)
    except AuroraError as e:
        return [replace(task, error=e)], None
    except Exception as e:  # a bug met on this row's media: its row says so, the run goes on
        logger.exception("unexpected error planning the windows of %s", task.id)
        return [replace(task, error=AuroraError(f"{type(e).__name__}: {e}"))], None
    if not subtasks:
        return [replace(task, error=InvalidRequestError("no window of the video holds a frame", param="start"))], None
    return subtasks, data


async def _cancel(jobs: set[asyncio.Task]) -> None:
    for job in jobs:
        job.cancel()
    await asyncio.gather(*jobs, return_exceptions=True)
