"""One ``aurora-serve batch`` run: INPUT → tasks → (in-process engine | ``--server`` | ``--ray``) → OUTPUT.

The order of a run: open the input and the output, read the ids OUTPUT already holds, start the backend, take
SIGINT/SIGTERM, stream the rows through ``run_tasks`` into the chunk writer, commit the last chunk, print the
summary (a line for people on stderr, a JSON object on stdout). Exit status: 0 when every row was taken, 1 when
the engine or server failed, 128 + the signal number when a signal stopped it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from aurora_serve.batch.backend import Backend, FatalError
from aurora_serve.batch.inputs import Input, open_input, output_columns, tasks_of
from aurora_serve.batch.outputs import ChunkWriter, done_ids, output_format
from aurora_serve.batch.progress import Progress, summary_of
from aurora_serve.batch.runner import Skipped, Stop, run_tasks, select
from aurora_serve.batch.tasks import Defaults, Task
from aurora_serve.config import EngineSettings
from aurora_serve.media.fetch import FetchLimits

logger = logging.getLogger(__name__)
SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class BatchOptions:
    input: str
    output: str
    column: str | None = None  # the source column of a table (default: path, else url)
    defaults: Defaults = Defaults()
    max_tokens: int = 2048
    temperature: float = 0.0
    top_p: float = 1.0
    ignore_eos: bool = False  # generate exactly max_tokens (benchmarks: every path does the same work)
    max_in_flight: int = 16
    chunk_rows: int = 500
    chunk_seconds: float = 10.0
    shard: tuple[int, int] | None = None
    grace: float = 30.0
    log_every: float = 30.0
    progress_bar: bool | None = None  # None: a bar when stderr is a terminal
    server: str | None = None  # a running aurora-serve's URL
    api_key: str | None = None
    max_retries: int = 8  # --server: tries after a 429/503 or a connection failure
    ray: str | None = None  # "" or "local": a local Ray instance; else a cluster address
    ray_actors: int = 1
    ray_gpus_per_actor: float | None = None  # None: 1 when the cluster has GPUs, else 0
    engine: EngineSettings = field(default_factory=EngineSettings)
    fetch: FetchLimits = field(default_factory=FetchLimits)

    @property
    def sampling(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_new_tokens": self.max_tokens,
                **({"ignore_eos": True} if self.ignore_eos else {})}


def open_job(options: BatchOptions) -> tuple[Input, set[str]]:
    """The input and the ids OUTPUT already holds (checks both names before any engine starts)."""
    output_format(options.output)
    source = open_input(options.input, options.column, exclude=Path(options.output))
    return source, done_ids(options.output)


def run(options: BatchOptions) -> int:
    """The whole command; returns the exit status."""
    source, done = open_job(options)
    if options.ray is not None:
        from aurora_serve.batch.ray_job import run_ray

        return report(run_ray(options, source, done))
    skipped = Skipped()
    tasks = select(tasks_of(source, options.defaults), done, options.shard, skipped)
    first = next(tasks, None)
    if first is None:  # everything is done (or another shard's): no engine to start
        idle = Backend(options.engine.media, options.fetch, options.sampling)
        return report(asyncio.run(execute(options, source, iter(()), skipped, idle)))
    tasks = itertools.chain([first], tasks)
    if options.server:
        from aurora_serve.batch.remote import ServerBackend

        backend = ServerBackend(options.server, options.api_key, options.engine.media, options.fetch, options.sampling,
                                max_retries=options.max_retries)
        return report(asyncio.run(execute(options, source, tasks, skipped, backend, done)))
    from aurora_serve.batch.captioner import EngineBackend
    from aurora_serve.engine import AuroraEngine

    engine = AuroraEngine(options.engine)
    try:
        backend = EngineBackend(engine, options.sampling, options.fetch)
        return report(engine.engine.loop.run_until_complete(execute(options, source, tasks, skipped, backend, done)))
    finally:
        engine.shutdown()


async def execute(options: BatchOptions, source: Input, tasks: Iterator[Task], skipped: Skipped, backend: Backend,
                  done: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """Stream ``tasks`` (``select``'s, counting into ``skipped``) through ``backend`` into OUTPUT; the run's summary
    (with its ``exit_status``). ``done``: ids already written, for windows."""
    writer = ChunkWriter(options.output, output_columns(source), options.chunk_rows, options.chunk_seconds)
    progress = Progress(None if options.defaults.window_seconds else source.count(), log_every=options.log_every,
                        bar=options.progress_bar, warm_rows=options.max_in_flight)
    stop = Stop.new(options.grace)
    caught: list[int] = []

    def tick() -> None:
        if writer.due():
            writer.commit()
        progress.skip(skipped.done + skipped.other_shard + skipped.repeated - progress.skipped)
        progress.tick()

    status, fatal = 0, None
    try:
        await backend.start()  # a server that does not answer ends the run here, as a failure, not a traceback
        # After start: SGLang's tokenizer manager installs its own SIGTERM handler (it would wait for the
        # requests in flight and let the run go on taking rows) when it binds to this loop there.
        caught = _take_signals(stop)
        async for _, row in run_tasks(tasks, backend, max_in_flight=options.max_in_flight,
                                      window_seconds=options.defaults.window_seconds, skip=done.__contains__,
                                      stop=stop, tick=tick):
            writer.add(row)
            progress.add(row)
        tick()
    except FatalError as e:
        status, fatal = 1, str(e)
        logger.error("batch stopped: %s (rerun the same command to resume)", e)
    finally:
        writer.commit()
        _release_signals()
        await backend.close()
    if caught and status == 0:
        status = 128 + caught[0]
    return summary_of(progress, skipped, writer, status, caught, fatal)


def report(summary: dict[str, Any]) -> int:
    print(json.dumps(summary), file=sys.stdout, flush=True)
    return int(summary["exit_status"])


def _take_signals(stop: Stop) -> list[int]:
    """SIGINT/SIGTERM: the first stops taking rows (in-flight ones get the grace period), a second cancels them.
    Returns the list the first signal's number is put in."""
    caught: list[int] = []
    loop = asyncio.get_running_loop()

    def on_signal(sig: int) -> None:
        if caught:
            logger.warning("second signal: cancelling the rows in flight")
            stop.now.set()
            return
        caught.append(sig)
        logger.warning("%s: taking no new rows; rows in flight get %.0f s (signal again to cancel them)",
                       signal.Signals(sig).name, stop.grace)
        stop.asked.set()

    for sig in SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    return caught


def _release_signals() -> None:
    loop = asyncio.get_running_loop()
    for sig in SIGNALS:
        loop.remove_signal_handler(sig)
