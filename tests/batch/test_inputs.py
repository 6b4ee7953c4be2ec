"""INPUT kinds → raw rows, streamed: directories, text lists, CSV/TSV/JSONL/Parquet tables."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aurora_serve.batch.inputs import open_input
from aurora_serve.batch.inputs import tasks_of
from aurora_serve.batch.tasks import Defaults


def test_a_directory_is_walked_recursively_sorted_without_hidden_files_or_the_output(tmp_path):
    for name in ("b.mp4", "a.jpg", "sub/c.mp4", "sub/deeper/d.mp4", ".hidden.mp4", ".cache/e.mp4", "out.jsonl/part.jsonl"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    source = open_input(tmp_path, exclude=tmp_path / "out.jsonl")
    rows = list(source.rows())
    assert [r.written for r in rows] == ["a.jpg", "b.mp4", "sub/c.mp4", "sub/deeper/d.mp4"]
    assert rows[2].source == str(tmp_path / "sub/c.mp4") and source.count() == 4


def test_a_text_list_skips_blanks_and_comments_and_resolves_relative_paths(tmp_path):
    listing = tmp_path / "lists" / "videos.txt"
    listing.parent.mkdir()
    listing.write_text("# clips\nclips/a.mp4\n\n/abs/b.mp4\nhttps://example.com/c.mp4\nfile:///data/d.mp4\n")
    rows = list(open_input(listing).rows())
    assert [r.source for r in rows] == [str(listing.parent / "clips/a.mp4"), "/abs/b.mp4",
                                        "https://example.com/c.mp4", "/data/d.mp4"]
    assert rows[0].values == {"path": "clips/a.mp4"}


@pytest.mark.parametrize("kind", ["csv", "tsv", "jsonl", "parquet"])
def test_tables_give_the_same_tasks_in_every_format(tmp_path, kind):
    records = [{"url": "a.mp4", "id": "", "num_frames": 4, "topic": "cats"},
               {"url": "b.mp4", "id": "b", "num_frames": None, "topic": "dogs"}]
    path = tmp_path / f"t.{kind}"
    if kind in ("csv", "tsv"):
        sep = "," if kind == "csv" else "\t"
        lines = [sep.join(records[0])] + [sep.join("" if v is None else str(v) for v in r.values()) for r in records]
        path.write_text("\n".join(lines) + "\n")
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        pq.write_table(pa.Table.from_pylist(records), path)
    source = open_input(path)
    assert source.column == "url" and source.count() == 2
    tasks = list(tasks_of(source, Defaults(num_frames=8)))
    assert tasks[0].source == str(tmp_path / "a.mp4") and tasks[0].options["num_frames"] == 4
    assert tasks[1].id == "b" and tasks[1].options["num_frames"] == 8
    assert tasks[0].row["topic"] == "cats"  # the input's own columns travel to the output
    reference = list(tasks_of(open_input(_as_jsonl(tmp_path, records)), Defaults(num_frames=8)))
    assert [t.id for t in tasks] == [t.id for t in reference]  # the format never changes an id


def _as_jsonl(tmp_path, records):
    path = tmp_path / "reference.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_malformed_rows_are_error_rows_with_stable_ids(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"path": "a.mp4"}\n{"path": ""}\nnot json\n[1, 2]\n')
    tasks = list(tasks_of(open_input(path), Defaults()))
    assert [t.error is None for t in tasks] == [True, False, False, False]
    assert "row 3" in tasks[2].error.message and "invalid JSON" in tasks[2].error.message
    assert [t.id for t in tasks] == [t.id for t in tasks_of(open_input(path), Defaults())]
    assert len({t.id for t in tasks}) == 4


def test_a_table_without_a_source_column_is_refused_before_anything_runs(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("file,topic\na.mp4,x\n")
    with pytest.raises(ValueError, match="--column"):
        open_input(path)
    assert open_input(path, column="file").column == "file"
