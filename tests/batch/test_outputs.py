"""The output directory: atomic parts with one schema, read back with pyarrow and json; the ids already there."""

from __future__ import annotations

import json
import os
import time

import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from aurora_serve.batch.outputs import RESULT_TYPES, ChunkWriter, done_ids, part_files, read_rows

COLUMNS = {"path": "string", "score": "int64", **RESULT_TYPES}


def row(i: int, error: bool = False) -> dict:
    return {"path": f"v{i}.mp4", "score": i, "id": f"id{i}", "kind": "video", "caption": None if error else f"c{i}",
            "frames": None if error else 8, "seconds": 0.5, "token_kept_ratio": 0.2,
            "error": {"type": "invalid_media", "message": "bad"} if error else None}


@pytest.mark.parametrize("ext", ["parquet", "jsonl"])
def test_parts_commit_by_rows_and_read_back(tmp_path, ext):
    out = tmp_path / f"captions.{ext}"
    writer = ChunkWriter(out, COLUMNS, chunk_rows=3, chunk_seconds=1e9)
    for i in range(7):
        writer.add(row(i, error=i == 4))
    writer.commit()
    assert writer.parts == 3 and len(part_files(out)) == 3
    rows = list(read_rows(out))
    assert [r["id"] for r in rows] == [f"id{i}" for i in range(7)]
    assert rows[4]["error"] == {"type": "invalid_media", "message": "bad"} and rows[4]["caption"] is None
    assert list(rows[0]) == list(COLUMNS)  # input columns first, then the result's
    assert done_ids(out) == {f"id{i}" for i in range(7)}
    if ext == "parquet":  # standard readers take the directory, whatever each part held
        table = pq.read_table(out)
        assert table.num_rows == 7 and table.schema.field("frames").type == "int64"
        assert pads.dataset(out).to_table().column("caption").to_pylist()[3] == "c3"
    else:
        lines = [json.loads(line) for p in part_files(out) for line in p.read_text().splitlines()]
        assert len(lines) == 7


def test_a_chunk_of_only_errors_has_the_same_parquet_schema(tmp_path):
    out = tmp_path / "c.parquet"
    writer = ChunkWriter(out, COLUMNS, chunk_rows=2)
    for i in range(4):
        writer.add(row(i, error=i < 2))  # the first part holds no caption, no frames
    schemas = {pq.read_schema(p) for p in part_files(out)}
    assert len(schemas) == 1 and pq.read_table(out).num_rows == 4


def test_parts_commit_by_time_too(tmp_path):
    now = [0.0]
    writer = ChunkWriter(tmp_path / "c.jsonl", COLUMNS, chunk_rows=100, chunk_seconds=10, clock=lambda: now[0])
    writer.add(row(0))
    assert not writer.due() and writer.parts == 0
    now[0] = 11.0
    assert writer.due()
    writer.add(row(1))
    assert writer.parts == 1 and writer.rows_committed == 2


def test_a_killed_writers_temporary_file_is_invisible_and_cleaned_later(tmp_path):
    out = tmp_path / "c.parquet"
    out.mkdir()
    stale = out / ".part-old-00001.parquet.tmp"
    stale.write_bytes(b"half a parquet file")
    assert list(read_rows(out)) == [] and done_ids(out) == set()
    old = time.time() - 3600
    os.utime(stale, (old, old))
    ChunkWriter(out, COLUMNS)
    assert not stale.exists()


def test_carried_text_columns_hold_other_values_as_json(tmp_path):
    out = tmp_path / "c.parquet"
    writer = ChunkWriter(out, {"tags": "string", **RESULT_TYPES})
    writer.add({"tags": ["a", "b"], "id": "x"})
    writer.add({"tags": "plain", "id": "y"})
    writer.commit()
    assert [r["tags"] for r in read_rows(out)] == ['["a", "b"]', "plain"]


def test_output_names_are_checked(tmp_path):
    with pytest.raises(ValueError, match="jsonl or .parquet"):
        ChunkWriter(tmp_path / "captions.csv", COLUMNS)
    (tmp_path / "file.jsonl").write_text("{}\n")
    with pytest.raises(ValueError, match="is a file"):
        ChunkWriter(tmp_path / "file.jsonl", COLUMNS)
