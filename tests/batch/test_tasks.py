"""Rows → tasks: options, ids, shards, windows (pure functions)."""

from __future__ import annotations

import pytest

from aurora_serve.batch.tasks import (Defaults, in_shard, make_task, parse_option, parse_shard, plan_windows,
                                      window_task)
from aurora_serve.errors import InvalidRequestError


def test_cells_become_typed_options():
    assert parse_option("num_frames", "8") == 8 and parse_option("num_frames", 8.0) == 8
    assert parse_option("fps", "2") == 2.0 and isinstance(parse_option("fps", 2), float)
    assert parse_option("start", "") is None and parse_option("end", None) is None
    assert parse_option("end", float("nan")) is None  # a null that went through a float column
    with pytest.raises(InvalidRequestError) as err:
        parse_option("token_kept_ratio", "lots")
    assert err.value.param == "token_kept_ratio"


def test_a_rows_frame_rule_replaces_the_commands():
    command = Defaults(num_frames=8, token_kept_ratio=0.2)
    fps_row = make_task({"path": "a.mp4", "fps": "1", "max_frames": "4"}, "a.mp4", "/d/a.mp4", command)
    assert fps_row.options["num_frames"] is None and fps_row.options["fps"] == 1.0  # not overridden by --num-frames
    assert fps_row.options["token_kept_ratio"] == 0.2
    plain = make_task({"path": "a.mp4"}, "a.mp4", "/d/a.mp4", command)
    assert plain.options["num_frames"] == 8 and plain.options["fps"] is None


def test_ids_are_stable_and_follow_source_prompt_and_options():
    d = Defaults(num_frames=8)
    csv_row = make_task({"path": "a.mp4", "num_frames": "4"}, "a.mp4", "/x/a.mp4", d)
    json_row = make_task({"path": "a.mp4", "num_frames": 4}, "a.mp4", "/elsewhere/a.mp4", d)
    assert csv_row.id == json_row.id and len(csv_row.id) == 16  # text or number, moved or not: one id
    assert make_task({"path": "a.mp4", "num_frames": 5}, "a.mp4", "/x/a.mp4", d).id != csv_row.id
    assert make_task({"path": "a.mp4", "num_frames": 4, "prompt": "Say"}, "a.mp4", "/x/a.mp4", d).id != csv_row.id
    assert make_task({"path": "b.mp4", "num_frames": 4}, "b.mp4", "/x/b.mp4", d).id != csv_row.id
    assert make_task({"path": "a.mp4", "id": " clip-7 "}, "a.mp4", "/x/a.mp4", d).id == "clip-7"


def test_a_bad_option_makes_an_error_row_not_an_exception():
    task = make_task({"path": "a.mp4", "num_frames": "many"}, "a.mp4", "/x/a.mp4", Defaults())
    assert isinstance(task.error, InvalidRequestError) and task.error.param == "num_frames"


def test_shards_split_ids_without_overlap():
    ids = [f"row-{i}" for i in range(400)]
    for n in (1, 2, 3):
        parts = [{i for i in ids if in_shard(i, (k, n))} for k in range(n)]
        assert set().union(*parts) == set(ids) and sum(map(len, parts)) == len(ids)
        assert all(len(p) > 400 / n / 2 for p in parts)  # roughly even
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "-1/2", "1", "a/b"):
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_windows_tile_the_video_and_skip_empty_ones():
    times = [i / 10 for i in range(45)]  # 4.5 s at 10 fps
    windows = plan_windows(times, 4.5, 2.0)
    assert windows == [(0.0, 2.0), (2.0, 4.0), (4.0, 4.5)]
    assert plan_windows(times, 4.5, 2.0, start=1.0, end=3.0) == [(1.0, 3.0)]
    assert plan_windows(times, 4.5, 1.5, start=1.0) == [(1.0, 2.5), (2.5, 4.0), (4.0, 4.5)]
    sparse = [0.0, 0.1, 3.0]  # no frame between 1 and 3 s
    assert plan_windows(sparse, 3.5, 1.0) == [(0.0, 1.0), (3.0, 3.5)]
    with pytest.raises(InvalidRequestError):
        plan_windows(times, 4.5, 1.0, start=5.0)


def test_window_tasks_carry_their_span_and_id():
    task = make_task({"path": "a.mp4", "id": "v1", "fps": 2}, "a.mp4", "/x/a.mp4", Defaults())
    w = window_task(task, 2.0, 4.5)
    assert w.id == "v1@2.000-4.500" and w.window == (2.0, 4.5)
    assert (w.options["start"], w.options["end"], w.options["fps"]) == (2.0, 4.5, 2.0)


def test_batch_takes_the_engine_settings_serve_takes():
    """One table of settings: a GPU host's `batch` can set media workers, the merge backend, SGLang's batch
    size … exactly as `serve` does; flags not given keep the settings' defaults."""
    import argparse

    from aurora_serve.batch.cli_args import add_batch_arguments, batch_options
    from aurora_serve.config import EngineSettings

    parser = argparse.ArgumentParser()
    add_batch_arguments(parser)
    given = batch_options(parser.parse_args(["in", "-o", "out.jsonl", "--media-workers", "0", "--merge-backend",
                                             "reference", "--max-running-requests", "8", "--max-frames", "32",
                                             "--offline"]))
    assert given.engine.runtime.media_workers == 0 and given.engine.runtime.merge_backend == "reference"
    assert given.engine.max_running_requests == 8 and given.engine.media.max_frames == 32
    assert given.engine.hf_offline
    assert batch_options(parser.parse_args(["in", "-o", "out.jsonl"])).engine == EngineSettings()
