"""INPUT → raw rows, streamed: nothing holds more than one Parquet batch or one line at a time.

Kinds, by what INPUT is:
  a directory      every regular, non-hidden file under it (recursive, sorted; file symlinks followed, directory
                   symlinks not); videos and images are told apart later, by content. Column ``path``: the path
                   relative to the directory.
  .csv .tsv        a header row; the source column is ``path`` or ``url`` unless ``column`` names another
  .jsonl .ndjson   one JSON object per line (its columns: the first row's keys)
  .parquet .pq     read in batches
  any other file   a text list: one path or URL per line; blank lines and lines starting with ``#`` skipped

A relative path in a list or table is relative to the file that lists it. Sources with a scheme (``https://``,
``data:``) are URLs; ``file://`` URLs are local paths.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

from aurora_serve.batch.outputs import RESULT_TYPES, carried
from aurora_serve.batch.tasks import Defaults, Task, make_task, resolve_source
from aurora_serve.errors import InvalidRequestError

TABLES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
SOURCE_COLUMNS = ("path", "url")
_PARQUET_BATCH = 1024


class RawRow(NamedTuple):
    written: str  # the source as the input writes it (hashed into the row's id)
    source: str  # where to read the media from: an absolute path or a URL
    values: dict[str, Any]  # the row's cells
    error: InvalidRequestError | None = None  # the row itself is malformed (no source, not a JSON object)


@dataclass
class Input:
    path: Path
    kind: str  # "dir" | "list" | one of TABLES' values
    column: str  # the source column
    columns: list[str] = field(default_factory=list)  # the input's columns, in order
    types: dict[str, str] = field(default_factory=dict)  # column → arrow type name, for Parquet output
    exclude: Path | None = None  # a directory walk skips this (the output, when it lies inside INPUT)

    def rows(self) -> Iterator[RawRow]:
        if self.kind == "dir":
            for path in self._walk():
                yield self.file_row(path.relative_to(self.path).as_posix())
        elif self.kind == "list":
            for line in _lines(self.path):
                yield self.line_row(line)
        else:
            for number, values in enumerate(_table_rows(self.path, self.kind), 1):
                yield self.table_row(values, number)

    def file_row(self, relative: str) -> RawRow:
        """A directory's file, by its path relative to the directory."""
        return RawRow(relative, str(self.path / relative), {"path": relative})

    def line_row(self, line: str) -> RawRow:
        return RawRow(line, resolve_source(line, self.path.parent), {"path": line})

    def count(self) -> int:
        """Rows the input holds (one more pass over a text input; Parquet's footer says it)."""
        if self.kind == "dir":
            return sum(1 for _ in self._walk())
        if self.kind == "list":
            return sum(1 for _ in _lines(self.path))
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(self.path).metadata.num_rows
        return sum(1 for _ in _table_rows(self.path, self.kind))

    def table_row(self, values: Any, number: int | None = None) -> RawRow:
        """A table row. A malformed one is an error row whose id hashes its content (stable across runs)."""
        at = f"{self.path.name} row {number}" if number is not None else self.path.name
        if not isinstance(values, dict):
            why = values if isinstance(values, str) else f"not an object: {values!r:.80}"
            return RawRow(_content_key(values), "", {}, InvalidRequestError(f"{at}: {why}"))
        written = values.get(self.column)
        if not isinstance(written, str) or not written.strip():
            error = InvalidRequestError(f"{at} has no {self.column}", param=self.column)
            return RawRow(_content_key(values), "", values, error)
        return RawRow(written, self._resolve(written.strip()), values)

    def _resolve(self, written: str) -> str:
        return resolve_source(written, self.path.parent)

    def _walk(self) -> Iterator[Path]:
        yield from _walk(self.path, self.exclude.resolve() if self.exclude is not None else None)


def _walk(root: Path, skip: Path | None) -> Iterator[Path]:
    """Regular non-hidden files under ``root``, depth first, sorted by name at each level."""
    with os.scandir(root) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if entry.name.startswith(".") or (skip is not None and Path(entry.path).resolve() == skip):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path), skip)
        elif entry.is_file():
            yield Path(entry.path)


def _content_key(values: Any) -> str:
    return "#row:" + hashlib.blake2b(json.dumps(values, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()


def open_input(path: str | Path, column: str | None = None, exclude: Path | None = None) -> Input:
    """The input at ``path``; for tables, its source column (``column``, else ``path``, else ``url``)."""
    path = Path(path)
    if path.is_dir():
        return Input(path, "dir", "path", ["path"], {"path": "string"}, exclude)
    if not path.is_file():
        raise FileNotFoundError(f"input {path} does not exist")
    kind = TABLES.get(path.suffix.lower(), "list")
    if kind == "list":
        return Input(path, "list", "path", ["path"], {"path": "string"})
    columns, types = _schema(path, kind)
    found = [column] if column else [c for c in SOURCE_COLUMNS if c in columns]
    if not found or found[0] not in columns:
        wanted = repr(column) if column else "'path' or 'url'"
        raise ValueError(f"{path} has no {wanted} column (columns: {', '.join(columns) or 'none'}); "
                         "name the source column with --column")
    return Input(path, kind, found[0], columns, types)


def _schema(path: Path, kind: str) -> tuple[list[str], dict[str, str]]:
    """The table's columns, and the arrow type each keeps in Parquet output (text unless Parquet says a
    number or a boolean: a CSV cell is text, and JSON rows need not agree on types)."""
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        kept = {"int64": pa.types.is_integer, "float64": pa.types.is_floating, "bool": pa.types.is_boolean}
        types = {f.name: next((name for name, test in kept.items() if test(f.type)), "string") for f in schema}
        return list(schema.names), types
    first = next(iter(_table_rows(path, kind)), None)
    columns = list(first) if isinstance(first, dict) else []
    return columns, {c: "string" for c in columns}


def _lines(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                yield line


def _table_rows(path: Path, kind: str) -> Iterator[Any]:
    if kind in ("csv", "tsv"):
        with open(path, newline="", encoding="utf-8") as f:
            yield from csv.DictReader(f, delimiter="\t" if kind == "tsv" else ",")
    elif kind == "jsonl":
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as e:
                        yield f"line {number}: invalid JSON ({e.msg})"
    else:
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=_PARQUET_BATCH):
            yield from batch.to_pylist()


def tasks_of(source: Input, defaults: Defaults) -> Iterator[Task]:
    """The input's rows as tasks (the input's own columns carried to the output)."""
    return tasks_of_rows(source, source.rows(), defaults)


def tasks_of_rows(source: Input, raws: Iterable[RawRow], defaults: Defaults) -> Iterator[Task]:
    """Raw rows (this input's) as tasks; a malformed row keeps its error."""
    keep = list(carried(source.columns, source.types))
    for raw in raws:
        task = make_task(raw.values, raw.written, raw.source, defaults, keep)
        yield task if raw.error is None else Task(task.id, raw.source, task.prompt, task.options, task.row, raw.error)


def output_columns(source: Input) -> dict[str, str]:
    """Every output column → its type: the input's own (less those the result writes), then the result's."""
    return {**carried(source.columns, source.types), **RESULT_TYPES}
