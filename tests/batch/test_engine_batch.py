"""``batch`` and ``Captioner`` on the real engine (tiny model, CPU): every input kind, both output formats read
back with their own readers, a corrupt file among good ones, per-row options, shards, windows, resume."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from aurora_serve import Captioner
from aurora_serve.batch.outputs import read_rows
from aurora_serve.model.token_count import tokens_per_frame
from tests.batch.conftest import run_on
from tests.support.clips import make_video

pytestmark = pytest.mark.engine
GOOD = {"a.mp4", "sub/b.mp4", "c.mp4", "d.jpg"}


def test_a_directory_to_jsonl_with_a_corrupt_file_among_good_ones(engine, media, tmp_path):
    out = tmp_path / "captions.jsonl"
    summary = run_on(engine, media, out)
    rows = [json.loads(line) for part in sorted(out.glob("part-*.jsonl")) for line in part.read_text().splitlines()]
    by_path = {r["path"]: r for r in rows}
    assert set(by_path) == GOOD | {"broken.mp4"} and summary["exit_status"] == 0 and summary["errors"] == 1
    assert by_path["broken.mp4"]["error"]["type"] in ("invalid_media", "unsupported_media")
    assert by_path["broken.mp4"]["caption"] is None
    for path in GOOD:
        row = by_path[path]
        assert row["error"] is None and row["caption"] and row["completion_tokens"] == 6
        assert row["frames"] == (1 if path.endswith(".jpg") else 2) and row["kind"] == ("image" if path.endswith(".jpg") else "video")
        assert row["visual_tokens"] == row["frames"] * tokens_per_frame(0.5) and row["token_kept_ratio"] == 0.5
        assert row["model"] and row["seconds"] > 0 and row["prompt_tokens"] > row["visual_tokens"]
    # The same command again: nothing to do, nothing written twice.
    again = run_on(engine, media, out)
    assert again["rows"] == 0 and again["skipped_done"] == 5 and again["parts_written"] == 0
    assert len(list(read_rows(out))) == 5


def test_a_list_and_a_table_with_row_options_to_parquet(engine, media, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two clips\n{media / 'a.mp4'}\n\n{media / 'c.mp4'}\n")
    out = tmp_path / "from-list.parquet"
    run_on(engine, listing, out)
    assert sorted(pq.read_table(out).column("path").to_pylist()) == sorted([str(media / "a.mp4"), str(media / "c.mp4")])

    table = tmp_path / "rows.csv"
    table.write_text(f"url,id,num_frames,token_kept_ratio,prompt,topic\n{media / 'a.mp4'},first,3,,,cats\n"
                     f"{media / 'sub/b.mp4'},,,0.2,Say what happens.,dogs\n{media / 'c.mp4'},third,many,,,birds\n")
    out = tmp_path / "from-table.parquet"
    run_on(engine, table, out)
    rows = {r["topic"]: r for r in pq.read_table(out).to_pylist()}
    assert rows["cats"]["id"] == "first" and rows["cats"]["frames"] == 3 and rows["cats"]["num_frames"] == 3
    assert rows["dogs"]["token_kept_ratio"] == 0.2 and rows["dogs"]["visual_tokens"] == 2 * tokens_per_frame(0.2)
    assert rows["dogs"]["prompt"] == "Say what happens." and len(rows["dogs"]["id"]) == 16
    assert rows["birds"]["error"]["type"] == "invalid_request" and "num_frames" in rows["birds"]["error"]["message"]


def test_two_shards_make_the_whole_table(engine, media, tmp_path):
    whole = {r["id"] for r in read_rows(_run(engine, media, tmp_path / "whole.jsonl"))}
    out = tmp_path / "sharded.jsonl"
    first = run_on(engine, media, out, shard=(0, 2))
    second = run_on(engine, media, out, shard=(1, 2))
    ids = [r["id"] for r in read_rows(out)]
    assert sorted(ids) == sorted(whole) and len(ids) == len(set(ids))
    assert first["rows"] and second["rows"] and first["skipped_other_shard"] == second["rows"]


def _run(engine, media, out):
    run_on(engine, media, out)
    return out


def test_windows_cover_the_video(engine, tmp_path):
    (tmp_path / "clips").mkdir()
    make_video(tmp_path / "clips" / "long.mp4", frames=60, w=64, h=48, seed=46, fps=24)  # 2.5 s
    out = tmp_path / "dense.jsonl"
    run_on(engine, tmp_path / "clips", out, defaults=_dense())
    rows = sorted(read_rows(out), key=lambda r: r["start"])
    assert [(r["start"], r["end"]) for r in rows] == [(0.0, 1.0), (1.0, 2.0), (2.0, 2.5)]
    assert all(r["error"] is None and r["frames"] == 2 and r["id"].endswith(f"@{r['start']:.3f}-{r['end']:.3f}")
               for r in rows)
    assert len({r["id"] for r in rows}) == 3
    again = run_on(engine, tmp_path / "clips", out, defaults=_dense())
    assert again["rows"] == 0  # every window is already there


def _dense():
    from aurora_serve.batch.tasks import Defaults

    return Defaults(num_frames=2, token_kept_ratio=0.5, window_seconds=1.0)


def test_captioner_keeps_input_order_and_reports_bad_items_as_rows(engine, media):
    items = [str(media / "c.mp4"), (media / "d.jpg").read_bytes(), {"path": str(media / "a.mp4"), "num_frames": 3,
             "id": "mine"}, str(media / "broken.mp4"), str(media / "missing.mp4")]
    with Captioner(engine=engine, max_tokens=6, token_kept_ratio=0.5, num_frames=2, max_in_flight=3) as captioner:
        rows = captioner.caption(items)
        streamed = list(captioner.stream(items[:3]))
    assert [r["kind"] for r in rows[:3]] == ["video", "image", "video"]
    assert rows[2]["id"] == "mine" and rows[2]["frames"] == 3 and rows[0]["path"] == str(media / "c.mp4")
    assert rows[3]["error"] is not None and rows[4]["error"]["message"].startswith("media file not found")
    assert sorted(r["caption"] for r in streamed) == sorted(r["caption"] for r in rows[:3])  # greedy: same text
    with pytest.raises(TypeError, match="unknown item key"):
        Captioner(engine=engine).caption([{"path": "x.mp4", "num_frame": 3}])
