"""A small media set for the batch tests (tiny clips, an image, a corrupt file) and a way to run a batch job on the
session's engine (tests/conftest.py) instead of starting one per test."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from aurora_serve.batch.inputs import tasks_of
from aurora_serve.batch.job import BatchOptions, execute, open_job
from aurora_serve.batch.runner import Skipped, select
from aurora_serve.batch.tasks import Defaults
from tests.support.clips import make_image, make_video

OPTIONS = BatchOptions(input="", output="", defaults=Defaults(num_frames=2, token_kept_ratio=0.5), max_tokens=6,
                       max_in_flight=4, chunk_rows=3, chunk_seconds=0.5, log_every=3600, progress_bar=False)


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("batch-media")
    (root / "sub").mkdir()
    make_video(root / "a.mp4", frames=24, w=64, h=48, seed=41)
    make_video(root / "sub" / "b.mp4", frames=36, w=80, h=60, seed=42)
    make_video(root / "c.mp4", frames=12, w=64, h=48, seed=43)
    make_image(root / "d.jpg", w=72, h=54, seed=44)
    (root / "broken.mp4").write_bytes(make_video(None, frames=24, w=64, h=48, seed=45)[:500])  # truncated
    return root


def run_on(engine, input, output, **changes) -> dict:
    """``aurora-serve batch`` on the session engine (the same code path after the engine start)."""
    from aurora_serve.batch.captioner import EngineBackend

    options = replace(OPTIONS, input=str(input), output=str(output), **changes)
    source, done = open_job(options)
    skipped = Skipped()
    tasks = select(tasks_of(source, options.defaults), done, options.shard, skipped)
    backend = EngineBackend(engine, options.sampling, options.fetch)
    return engine.engine.loop.run_until_complete(execute(options, source, tasks, skipped, backend, done))
