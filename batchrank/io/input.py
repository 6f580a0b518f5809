"""Find the input Parquet files, check their schema, and scan them lazily with canonical column names.

input.path may be a local path or an object-store URI (s3://, gs://): a file, a prefix, or a glob.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from batchrank import storage
from batchrank.errors import InputDataError, StorageError
from batchrank.io import parquet_files
from batchrank.spec import CANONICAL_COLUMNS, InputSpec
from batchrank.storage import Location, ObjectPath

_ID_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view, pa.types.is_integer)
_TEXT_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)


@dataclass(frozen=True)
class InputFiles:
    """The resolved input: Parquet files in a fixed order, with their common schema and row counts."""

    paths: list[Location]
    schema: pa.Schema
    num_rows: list[int]

    @property
    def total_rows(self) -> int:
        return sum(self.num_rows)


def resolve_input_paths(path: str) -> list[Location]:
    """A file, every *.parquet under a directory, or a glob; sorted so the row order is stable."""
    if storage.is_remote(path):
        return _resolve_objects(path)
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


def _resolve_objects(path: str) -> list[Location]:
    """An object, every *.parquet under a prefix, or a glob (storage.glob's rules), from one listing."""
    try:
        location = ObjectPath(path)
        if storage.has_wildcards(location.key):
            matches: list[Location] = list(storage.glob(path))
            what = "the glob matches no object"
        elif location.is_file():
            return [location]
        else:
            matches = list(storage.list_files(location, ".parquet"))
            what = "no such object, and no .parquet object under that prefix"
        if not matches and not storage.bucket_exists(location):
            what = f"the bucket {location.bucket!r} does not exist"
    except StorageError as error:
        raise InputDataError(f"input.path {error}") from None
    except (OSError, ValueError) as error:
        raise InputDataError(f"input.path {storage.describe_error(path, error)}") from None
    if not matches:
        raise InputDataError(f"input.path {path}: {what}")
    return matches


def _read_schema(path: Location) -> tuple[pa.Schema, int]:
    if isinstance(path, ObjectPath):
        try:
            metadata = parquet_files.read_metadata(path)
            return metadata.schema.to_arrow_schema(), metadata.num_rows
        except pa.ArrowInvalid as error:
            raise InputDataError(f"{path}: not a readable Parquet file ({error})") from None
        except OSError as error:
            raise InputDataError(storage.describe_error(path, error)) from None
    try:
        metadata = pq.read_metadata(path)
        return metadata.schema.to_arrow_schema(), metadata.num_rows
    except PermissionError:
        raise InputDataError(f"{path}: permission denied") from None
    except (pa.ArrowInvalid, OSError) as error:
        raise InputDataError(f"{path}: not a readable Parquet file ({error})") from None


def _check_column(path: Location, schema: pa.Schema, name: str, canonical: str) -> None:
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


def pair_columns(spec: InputSpec, keep_columns: list[str] | tuple[str, ...] = ()) -> list[pl.Expr]:
    """The input's columns under canonical names (query_id, query, doc_id, document), then the kept columns."""
    columns = [pl.col(spec.column(c)).alias(c) for c in CANONICAL_COLUMNS]
    # A kept column that is already there under its canonical name (e.g. `query`) is not selected twice.
    columns += [pl.col(name) for name in keep_columns if name not in CANONICAL_COLUMNS]
    return columns


def source_columns(spec: InputSpec, keep_columns: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The input file's own names of the columns pair_columns selects."""
    names = [spec.column(c) for c in CANONICAL_COLUMNS] + [n for n in keep_columns if n not in CANONICAL_COLUMNS]
    return list(dict.fromkeys(names))


def scan_pairs(spec: InputSpec, files: InputFiles, keep_columns: list[str] | tuple[str, ...] = ()) -> pl.LazyFrame:
    """A lazy frame of the input with canonical names (query_id, query, doc_id, document) plus kept columns."""
    return parquet_files.scan(files.paths).select(pair_columns(spec, keep_columns))
