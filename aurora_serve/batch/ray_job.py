"""``--ray [ADDRESS]``: the same job as a Ray Data pipeline, for more than one machine.

    read the input (read_parquet / read_csv / read_json / read_text; a directory's listing via from_items)
    → map_batches(prepare)             rows → tasks: ids, options, shard, resume (the same functions as in-process)
    → map_batches(CaptionActor, ActorPoolStrategy(size=--ray-actors), num_gpus=1 each on a GPU cluster)
                                       one AuroraEngine per actor; each batch runs with many requests in flight
    → iterate on the driver            → the same atomic chunk writer, progress and summary

Rows cross the stages as JSON text, so Arrow never guesses a type for them; the driver writes them, so the output
directory needs to exist only where the driver runs, and a row id seen twice in one run is written once. Without
an address Ray starts on this machine. A CSV's cells are read as text, as in-process.
"""

from __future__ import annotations

import json
import logging
import signal
from typing import Any

from aurora_serve.batch.inputs import Input, output_columns, tasks_of_rows
from aurora_serve.batch.outputs import ChunkWriter, jsonable
from aurora_serve.batch.progress import Progress, summary_of
from aurora_serve.batch.tasks import Task, in_shard, make_task
from aurora_serve.errors import AuroraError

logger = logging.getLogger(__name__)


def encode_task(task: Task) -> str:
    error = None if task.error is None else {"type": task.error.code or task.error.type, "message": task.error.message}
    return json.dumps({"id": task.id, "source": task.source, "prompt": task.prompt, "options": task.options,
                       "row": jsonable(task.row), "error": error})


def decode_task(text: str) -> Task:
    d = json.loads(text)
    error = None if d["error"] is None else AuroraError(d["error"]["message"], code=d["error"]["type"])
    return Task(d["id"], d["source"], d["prompt"], d["options"], d["row"], error)


def prepare(batch, *, source: Input, options, done: set[str]) -> dict[str, list[str]]:
    """A batch of input rows → ``{"task": [json]}`` for the rows this run does (shard, resume)."""
    rows = batch.to_pylist()
    if source.kind == "list":
        raws = (source.line_row(r["text"].strip()) for r in rows
                if r["text"].strip() and not r["text"].strip().startswith("#"))
    elif source.kind == "dir":
        raws = (source.file_row(r["path"]) for r in rows)
    else:
        raws = (source.table_row(r) for r in rows)
    tasks = tasks_of_rows(source, raws, options.defaults)
    return {"task": [encode_task(t) for t in tasks if in_shard(t.id, options.shard) and t.id not in done]}


class CaptionActor:
    """One engine per actor (per GPU); a batch of tasks → their rows, many in flight."""

    def __init__(self, options, done: set[str]):
        from aurora_serve.batch.captioner import EngineBackend
        from aurora_serve.engine import AuroraEngine

        self.options, self.done = options, done
        self.engine = AuroraEngine(options.engine)
        self.backend = EngineBackend(self.engine, options.sampling, options.fetch)

    def __call__(self, batch) -> dict[str, list[str]]:
        from aurora_serve.batch.runner import run_tasks

        tasks = [decode_task(text) for text in batch.column("task").to_pylist()]

        async def collect() -> list[tuple[int, dict]]:
            return [pair async for pair in run_tasks(
                tasks, self.backend, max_in_flight=self.options.max_in_flight,
                window_seconds=self.options.defaults.window_seconds, skip=self.done.__contains__)]

        rows = self.engine.engine.loop.run_until_complete(collect())
        return {"row": [json.dumps(jsonable(row)) for _, row in rows]}


def read(source: Input):
    """The input as a Ray dataset of raw rows (text lists: a ``text`` column; directories: ``path``)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import ray.data

    path = str(source.path)
    if source.kind == "parquet":
        return ray.data.read_parquet(path, partitioning=None)
    if source.kind in ("csv", "tsv"):
        return ray.data.read_csv(path, partitioning=None,
                                 parse_options=pacsv.ParseOptions(delimiter="\t" if source.kind == "tsv" else ","),
                                 convert_options=pacsv.ConvertOptions(
                                     column_types={c: pa.string() for c in source.columns}))
    if source.kind == "jsonl":
        return ray.data.read_json(path, lines=True, partitioning=None)
    if source.kind == "list":
        return ray.data.read_text(path, partitioning=None)
    return ray.data.from_items([{"path": raw.written} for raw in source.rows()])


def run_ray(options, source: Input, done: set[str]) -> dict[str, Any]:
    """The job on Ray Data; the summary as in-process."""
    import ray
    from ray.data import ActorPoolStrategy

    ray.init(address=None if options.ray in ("", "local") else options.ray, include_dashboard=False,
             ignore_reinit_error=True, logging_level=logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours is the one progress display
    gpus = options.ray_gpus_per_actor
    if gpus is None:
        gpus = 1 if ray.cluster_resources().get("GPU") else 0
    ds = read(source).map_batches(prepare, batch_format="pyarrow",
                                  fn_kwargs={"source": source, "options": options, "done": done})
    ds = ds.map_batches(CaptionActor, batch_format="pyarrow", batch_size=options.max_in_flight,
                        compute=ActorPoolStrategy(size=options.ray_actors), num_gpus=gpus,
                        num_cpus=0 if gpus else 1, fn_constructor_kwargs={"options": options, "done": done})
    writer = ChunkWriter(options.output, output_columns(source), options.chunk_rows, options.chunk_seconds)
    progress = Progress(None if options.defaults.window_seconds else source.count(), log_every=options.log_every,
                        bar=options.progress_bar, warm_rows=options.max_in_flight)
    caught, seen, status, fatal = _catch_signals(), set(), 0, None
    try:
        for record in ds.iter_rows():
            row = json.loads(record["row"])
            if row["id"] in seen:  # an id repeated in the input: its first row is the one written
                continue
            seen.add(row["id"])
            writer.add(row)
            progress.add(row)
            progress.tick()
            if caught:
                break
    except (ray.exceptions.RayError, AuroraError) as e:
        status, fatal = 1, str(e)
        logger.error("batch stopped: %s (rerun the same command to resume)", e)
    finally:
        writer.commit()
        ray.shutdown()
    if caught and status == 0:
        status = 128 + caught[0]
    return summary_of(progress, None, writer, status, caught, fatal)  # skips happen on the workers, uncounted


def _catch_signals() -> list[int]:
    """SIGINT/SIGTERM: stop after the row being written (Ray cancels the rest); the number goes in the list."""
    caught: list[int] = []

    def on_signal(sig, frame) -> None:
        caught.append(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    return caught


__all__ = ["CaptionActor", "decode_task", "encode_task", "prepare", "read", "run_ray"]
