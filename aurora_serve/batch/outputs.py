"""The output: a directory of chunk files, each written whole or not at all, and the ids already in it.

OUTPUT's extension picks the format (``.jsonl``/``.ndjson`` or ``.parquet``/``.pq``); OUTPUT itself is a directory
(Spark's and Ray Data's layout) of ``part-<run>-<seq>.<ext>`` files. A chunk is written to a hidden temporary
file, flushed to disk, then renamed into place (an atomic step on a POSIX file system), and the directory is
flushed too; so a ``kill -9`` or a power cut leaves every part whole, and readers never see a half-written one
(Parquet readers skip names starting with ``.`` or ``_``). Resume reads the ids of the parts that exist.

Read it back with ``pyarrow.parquet.read_table(OUTPUT)`` / ``pandas.read_parquet(OUTPUT)``, ``cat OUTPUT/*.jsonl``,
or ``read_rows(OUTPUT)`` here. Every part has the same columns: the input's own (the source column first), then
``RESULT_COLUMNS``; where a name is in both (``id``, ``prompt``, the options) the result's value is written.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from aurora_serve.batch.tasks import OPTION_COLUMNS

RESULT_TYPES = {
    "id": "string", "kind": "string", "prompt": "string",
    "token_kept_ratio": "float64", "num_frames": "int64", "fps": "float64", "max_frames": "int64",
    "start": "float64", "end": "float64",
    "caption": "string", "finish_reason": "string", "frames": "int64", "visual_tokens": "int64",
    "prompt_tokens": "int64", "completion_tokens": "int64", "model": "string", "seconds": "float64",
    "error": "error",  # null, or {"type", "message"}
}
RESULT_COLUMNS = tuple(RESULT_TYPES)
assert set(OPTION_COLUMNS) <= set(RESULT_COLUMNS)
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
STALE_TEMP_S = 60.0  # a live writer's temporary file exists for milliseconds; an older one is a killed run's


def output_format(path: str | Path) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"output {path}: the name must end in .jsonl or .parquet (it picks the format)")
    if Path(path).is_file():
        raise ValueError(f"output {path} is a file; batch output is a directory of chunk files (give a new name)")
    return fmt


def carried(columns: list[str], types: dict[str, str]) -> dict[str, str]:
    """The input columns written as they are (those the result does not overwrite), with their types."""
    return {c: types.get(c, "string") for c in columns if c not in RESULT_TYPES}


def jsonable(value: Any) -> Any:
    """A cell as a JSON value (what both formats write): strings for what JSON lacks."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


class ChunkWriter:
    """Buffers finished rows and commits them as one part when ``chunk_rows`` wait or the oldest has waited
    ``chunk_seconds``. ``columns``: every output column → its type (``carried(...)`` + ``RESULT_TYPES``)."""

    def __init__(self, path: str | Path, columns: dict[str, str], chunk_rows: int = 500, chunk_seconds: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.path, self.format = Path(path), output_format(path)
        self.columns, self.chunk_rows, self.chunk_seconds, self.clock = columns, chunk_rows, chunk_seconds, clock
        self.path.mkdir(parents=True, exist_ok=True)
        self.run = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
        self.parts = 0
        self.rows_committed = 0
        self._pending: list[dict] = []
        self._oldest = 0.0
        remove_stale_temps(self.path)

    def add(self, row: dict[str, Any]) -> None:
        if not self._pending:
            self._oldest = self.clock()
        self._pending.append({c: jsonable(row.get(c)) for c in self.columns})
        if self.due():
            self.commit()

    def due(self) -> bool:
        return bool(self._pending) and (len(self._pending) >= self.chunk_rows
                                        or self.clock() - self._oldest >= self.chunk_seconds)

    def commit(self) -> None:
        """Write the pending rows as one part (nothing when none are pending)."""
        if not self._pending:
            return
        self.parts += 1
        ext = "jsonl" if self.format == "jsonl" else "parquet"
        final = self.path / f"part-{self.run}-{self.parts:05d}.{ext}"
        temp = self.path / f".{final.name}.tmp"
        with open(temp, "wb") as f:
            if self.format == "jsonl":
                f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self._pending).encode())
            else:
                _write_parquet(f, self._pending, self.columns)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, final)
        _fsync_dir(self.path)
        self.rows_committed += len(self._pending)
        self._pending = []


def arrow_schema(columns: dict[str, str]):
    import pyarrow as pa

    error = pa.struct([("type", pa.string()), ("message", pa.string())])
    named = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(), "error": error}
    return pa.schema([(name, named[kind]) for name, kind in columns.items()])


def _write_parquet(f, rows: list[dict], columns: dict[str, str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    typed = [{c: _cell(r[c], columns[c]) for c in columns} for r in rows]
    pq.write_table(pa.Table.from_pylist(typed, schema=arrow_schema(columns)), f)


def _cell(value: Any, kind: str) -> Any:
    """A JSON value as the column's Parquet type (a carried text column holds other values as JSON text)."""
    if value is None or kind == "error":
        return value
    if kind == "string" and not isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return value


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temps(path: Path) -> None:
    """Delete temporary parts a killed run left (another live writer's are younger than STALE_TEMP_S)."""
    now = time.time()
    for temp in path.glob(".part-*.tmp"):
        try:
            if now - temp.stat().st_mtime > STALE_TEMP_S:
                temp.unlink()
        except FileNotFoundError:
            continue  # another writer renamed or removed it meanwhile


def part_files(path: str | Path) -> list[Path]:
    """The committed parts of OUTPUT, oldest run first."""
    path = Path(path)
    if not path.is_dir():
        return []
    ext = ".jsonl" if output_format(path) == "jsonl" else ".parquet"
    return sorted(p for p in path.glob("part-*" + ext) if p.is_file())


def read_rows(path: str | Path, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Every committed row of OUTPUT (``columns``: only these), part by part."""
    for part in part_files(path):
        if part.suffix == ".jsonl":
            with open(part, encoding="utf-8") as f:
                for line in f:
                    row = json.loads(line)
                    yield row if columns is None else {c: row.get(c) for c in columns}
        else:
            import pyarrow.parquet as pq

            yield from pq.read_table(part, columns=columns).to_pylist()


def done_ids(path: str | Path) -> set[str]:
    """Ids already written to OUTPUT (an absent OUTPUT: none)."""
    return {row["id"] for row in read_rows(path, ["id"])}
