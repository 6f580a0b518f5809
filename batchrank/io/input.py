"""Find the input Parquet files, check their schema, and scan them lazily with canonical column names."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from batchrank.errors import InputDataError
from batchrank.spec import CANONICAL_COLUMNS, InputSpec

_ID_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view, pa.types.is_integer)
_TEXT_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)


@dataclass(frozen=True)
class InputFiles:
    """The resolved input: Parquet files in a fixed order, with their common schema and row counts."""

    paths: list[Path]
    schema: pa.Schema
    num_rows: list[int]

    @property
    def total_rows(self) -> int:
        return sum(self.num_rows)


def resolve_input_paths(path: str) -> list[Path]:
    """A file, every *.parquet under a directory, or a glob; sorted so the row order is stable."""
    if any(ch in path for ch in "*?["):
        matches = sorted(Path(p) for p in glob.glob(path, recursive=True) if Path(p).is_file())
        if not matches:
            raise InputDataError(f"input.path {path!r}: the glob matches no file")
        return matches
    candidate = Path(path)
    if candidate.is_dir():
        matches = sorted(p for p in candidate.rglob("*.parquet") if p.is_file())
        if not matches:
            raise InputDataError(f"input.path {path}: the directory holds no .parquet file")
        return matches
    if not candidate.exists():
        raise InputDataError(f"input.path {path}: no such file or directory")
    return [candidate]


def _read_schema(path: Path) -> tuple[pa.Schema, int]:
    try:
        metadata = pq.read_metadata(path)
        return metadata.schema.to_arrow_schema(), metadata.num_rows
    except PermissionError:
        raise InputDataError(f"{path}: permission denied") from None
    except (pa.ArrowInvalid, OSError) as error:
        raise InputDataError(f"{path}: not a readable Parquet file ({error})") from None


def _check_column(path: Path, schema: pa.Schema, name: str, canonical: str) -> None:
    if name not in schema.names:
        mapped = f" (mapped from {canonical} in input.columns)" if name != canonical else ""
        raise InputDataError(
            f"{path}: missing column {name!r}{mapped}; the file has {schema.names}; "
            f"map yours with input.columns.{canonical}"
        )
    kind = schema.field(name).type
    allowed = _ID_TYPES if canonical in ("query_id", "doc_id") else _TEXT_TYPES
    if not any(check(kind) for check in allowed):
        expected = "string or integer" if canonical in ("query_id", "doc_id") else "string"
        raise InputDataError(f"{path}: column {name!r} ({canonical}) has type {kind}; expected {expected}")


def open_input(spec: InputSpec, keep_columns: list[str] | tuple[str, ...] = ()) -> InputFiles:
    """Resolve and check every input file's schema before anything else reads a row."""
    paths = resolve_input_paths(spec.path)
    needed = {canonical: spec.column(canonical) for canonical in CANONICAL_COLUMNS}
    first_schema: pa.Schema | None = None
    num_rows = []
    for path in paths:
        schema, rows = _read_schema(path)
        for canonical, name in needed.items():
            _check_column(path, schema, name, canonical)
        for extra in keep_columns:
            if extra in CANONICAL_COLUMNS and spec.column(extra) != extra:
                raise InputDataError(
                    f"output.keep_columns names {extra!r}, a canonical column mapped from another column; "
                    "keep the source column instead"
                )
            if extra not in schema.names and extra not in CANONICAL_COLUMNS:
                raise InputDataError(f"{path}: output.keep_columns names {extra!r}, which the file lacks")
        columns = list(dict.fromkeys([*needed.values(), *keep_columns]))
        selected = pa.schema([schema.field(name) for name in columns])
        if first_schema is None:
            first_schema = selected
        elif not selected.equals(first_schema):
            raise InputDataError(
                f"{path}: its columns {selected} differ from those of {paths[0]} ({first_schema}); "
                "every input file needs the same types"
            )
        num_rows.append(rows)
    assert first_schema is not None
    if sum(num_rows) == 0:
        raise InputDataError(f"input.path {spec.path}: the input has zero rows")
    return InputFiles(paths, first_schema, num_rows)


def scan_pairs(spec: InputSpec, files: InputFiles, keep_columns: list[str] | tuple[str, ...] = ()) -> pl.LazyFrame:
    """A lazy frame of the input with canonical names (query_id, query, doc_id, document) plus kept columns."""
    columns = [pl.col(spec.column(c)).alias(c) for c in CANONICAL_COLUMNS]
    # A kept column that is already there under its canonical name (e.g. `query`) is not selected twice.
    columns += [pl.col(name) for name in keep_columns if name not in CANONICAL_COLUMNS]
    return pl.scan_parquet([str(p) for p in files.paths]).select(columns)
