"""``batch --ray`` on a local Ray instance, one actor with the tiny model: the rows, ids and greedy captions of an
in-process run, per-row errors, and resume."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aurora_serve.batch.job import open_job
from aurora_serve.batch.outputs import read_rows
from aurora_serve.config import EngineSettings
from aurora_serve.media.item import MediaPolicy
from tests.batch.conftest import OPTIONS, run_on

pytestmark = [pytest.mark.engine, pytest.mark.timeout(1800)]  # a second engine starts
ray = pytest.importorskip("ray", reason="the ray extra (pip install 'aurora-serve[ray]'; in the CPU lock)")


def test_ray_writes_what_the_in_process_run_writes_and_resumes(engine, tiny_xtuner, media, tmp_path):
    from aurora_serve.batch.ray_job import run_ray

    table = tmp_path / "rows.csv"
    table.write_text("path,num_frames,topic\n" + "".join(f"{media / p},{n},{t}\n" for p, n, t in [
        ("a.mp4", 3, "x"), ("c.mp4", "", "y"), ("d.jpg", "", "z"), ("broken.mp4", "", "w")]))
    options = replace(OPTIONS, input=str(table), output=str(tmp_path / "ray.jsonl"), ray="local",
                      engine=EngineSettings(model_path=str(tiny_xtuner), device="cpu", sglang_log_level="error",
                                            media=MediaPolicy(max_frames=16)))
    summary = run_ray(options, *open_job(options))
    assert summary["exit_status"] == 0 and summary["rows"] == 4 and summary["errors"] == 1
    by_ray = {r["topic"]: r for r in read_rows(options.output)}
    run_on(engine, table, tmp_path / "local.jsonl")
    by_engine = {r["topic"]: r for r in read_rows(tmp_path / "local.jsonl")}
    assert set(by_ray) == set(by_engine) == {"x", "y", "z", "w"}
    for topic, mine in by_engine.items():
        theirs = by_ray[topic]
        assert list(theirs) == list(mine)  # the same columns in the same order
        for column in ("id", "caption", "frames", "visual_tokens", "kind", "num_frames", "path"):
            assert theirs[column] == mine[column], (topic, column)
        assert (theirs["error"] is None) == (mine["error"] is None)
    again = run_ray(options, *open_job(options))
    assert again["rows"] == 0 and len(list(read_rows(options.output))) == 4
