"""Find the input Parquet files, check their columns, and scan them with canonical column names and types.

input.path is a file, a directory (every *.parquet under it), or a glob; a local path or an object-store URI (names
starting with '_' or '.' are left out, and a directory a glob matches stands for its .parquet files:
storage.globbing). The files of one input may have been written by different tools: `string`, `large_string`,
`string_view` and dictionary-encoded strings are all text, and integer ids of any width are ids; every file is read
as one schema. A kept column that no file holds may come from Hive partition directories (io/partitions.py).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from itertools import groupby

import numpy as np
import polars as pl
import pyarrow as pa

from batchrank import storage
from batchrank.errors import InputDataError, StorageError
from batchrank.io import parquet_files
from batchrank.io.partitions import Partition, literal_columns, partition_values
from batchrank.spec import CANONICAL_COLUMNS, InputSpec
from batchrank.storage import StoragePath
from batchrank.storage.globbing import has_wildcards

ID_COLUMNS = ("query_id", "doc_id")


@dataclass(frozen=True)
class InputFile:
    path: StoragePath
    num_rows: int
    size: int
    footer_sha256: str  # the file's identity in the job's fingerprint (storage-independent, unlike mtime)
    partition: Partition = ()  # its Hive partition directories' (name, value) pairs, below the input's root


@dataclass(frozen=True)
class InputFiles:
    """The resolved input: Parquet files in a fixed order, and the one schema they are all read as."""

    files: list[InputFile]
    schema: dict[str, pl.DataType]  # source column name -> the type every file is read as
    spec: InputSpec
    keep_columns: tuple[str, ...] = ()
    partition_columns: tuple[str, ...] = ()  # kept columns that come from partition directories, not the files

    @property
    def paths(self) -> list[StoragePath]:
        return [f.path for f in self.files]

    @property
    def num_rows(self) -> list[int]:
        return [f.num_rows for f in self.files]

    def source_columns(self, names: Collection[str] | None = None) -> list[str]:
        """The input file's own names of the columns a job reads: the four canonical ones, then kept columns (not
        those of partition directories; with `names`, of those canonical or kept names only)."""
        columns = [self.spec.column(c) for c in CANONICAL_COLUMNS if names is None or c in names]
        columns += [n for n in self.keep_columns if n not in CANONICAL_COLUMNS and n not in self.partition_columns
                    and (names is None or n in names)]
        return list(dict.fromkeys(columns))

    def canonical(self, names: Collection[str] | None = None) -> list[pl.Expr]:
        """Source columns -> canonical names (query_id, query, doc_id, document) and types, then kept columns (with
        `names`, those only)."""
        columns = [pl.col(self.spec.column(c)).cast(self.schema[self.spec.column(c)]).alias(c) for c in CANONICAL_COLUMNS]
        # A kept column that is already there under its canonical name (e.g. `query`) is not selected twice.
        columns += [pl.col(n).cast(self.schema[n]) for n in self.keep_columns if n not in CANONICAL_COLUMNS]
        return [column for column in columns if names is None or column.meta.output_name() in names]

    def scan(self) -> pl.LazyFrame:
        """The input with canonical names and types, lazily, every file cast to the one schema."""
        sources = [path.polars_source() for path in self.paths]
        options = next((options for _, options in sources if options is not None), None)
        schema = {name: kind for name, kind in self.schema.items() if name not in self.partition_columns}

        def scan(names: list[str]) -> pl.LazyFrame:
            return pl.scan_parquet(
                names, storage_options=options, schema=schema, extra_columns="ignore",
                cast_options=pl.ScanCastOptions(integer_cast="upcast", categorical_to_string="allow"),
            )

        if not self.partition_columns:
            return scan([source for source, _ in sources]).select(self.canonical())
        # One scan per run of files with the same partition values, its values as constants (a file-path column
        # mapped to values costs a string per row: 3x the memory of the scan on 4M rows).
        runs = groupby(zip((source for source, _ in sources), self.files, strict=True), key=lambda item: item[1].partition)
        frames = [scan([source for source, _ in run]).with_columns(literal_columns(partition, self.partition_columns))
                  for partition, run in runs]
        return pl.concat(frames, how="vertical").select(self.canonical())

    def locate(self, row: int) -> tuple[StoragePath, int]:
        """The file and the row number inside it (0-based) of a global row number."""
        offset = 0
        for file in self.files:
            if row < offset + file.num_rows:
                return file.path, row - offset
            offset += file.num_rows
        raise IndexError(row)

    def locate_many(self, rows: pl.Series) -> pl.DataFrame:
        """Global row numbers -> (file, row inside the file), vectorised."""
        ends = np.cumsum(self.num_rows)
        positions = rows.cast(pl.Int64).to_numpy()
        which = np.searchsorted(ends, positions, side="right")
        starts = np.concatenate([[0], ends[:-1]])
        names = np.array([str(p) for p in self.paths], dtype=object)
        return pl.DataFrame({"file": pl.Series(names[which] if len(positions) else [], dtype=pl.String),
                             "row": pl.Series(positions - starts[which], dtype=pl.Int64)})

    def read_rows(self, reader: parquet_files.RowRangeReader, start: int, count: int) -> pl.DataFrame:
        """Rows [start, start + count) of the input, canonical names and types."""
        pieces = []
        for index, table in reader.read_by_file(start, count, self.source_columns()):
            frame = pl.from_arrow(table)
            assert isinstance(frame, pl.DataFrame)
            if self.partition_columns:
                frame = frame.with_columns(literal_columns(self.files[index].partition, self.partition_columns))
            pieces.append(frame.select(self.canonical()))
        return pl.concat(pieces)


def resolve_input_paths(path: str) -> tuple[list[StoragePath], StoragePath]:
    """A file, every *.parquet under a directory, or a glob; sorted so the row order is stable. With the root
    that partition directories are read below (the directory, a glob's fixed prefix, a file's own directory)."""
    try:
        return _resolve(path)
    except StorageError as error:
        raise InputDataError(f"input.path {error}") from None
    except (OSError, ValueError) as error:
        raise InputDataError(f"input.path {storage.describe_error(path, error)}") from None


def _resolve(path: str) -> tuple[list[StoragePath], StoragePath]:
    location, remote = StoragePath.of(path), StoragePath.is_uri(path)
    root = location
    if has_wildcards(location.key if remote else path):
        matches, what = storage.glob(path), f"the glob matches no {'object' if remote else 'file'}"
        root = storage.glob_base(path)
    elif location.is_file():
        return [location], location.parent
    elif remote or location.is_dir():
        matches = storage.data_files(location)
        what = ("no such object, and no .parquet object under that prefix" if remote
                else "the directory holds no .parquet file")
    else:
        raise InputDataError(f"input.path {path}: no such file or directory")
    if not matches:
        location.check_bucket()
        raise InputDataError(f"input.path {path}: {what}")
    return matches, root


def _is_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


def _read_file(path: StoragePath) -> tuple[pa.Schema, InputFile]:
    try:
        metadata, digest, size = parquet_files.read_footer(path)
        return metadata.schema.to_arrow_schema(), InputFile(path, metadata.num_rows, size, digest)
    except PermissionError:
        raise InputDataError(f"{path}: permission denied") from None
    except pa.ArrowInvalid as error:
        raise InputDataError(f"{path}: not a readable Parquet file ({error})") from None
    except OSError as error:
        if StoragePath.is_uri(str(path)):
            raise InputDataError(storage.describe_error(str(path), error)) from None
        raise InputDataError(f"{path}: not a readable Parquet file ({error})") from None


def _column_type(path: StoragePath, schema: pa.Schema, name: str, canonical: str) -> pl.DataType:
    """The polars type a canonical column is read as, or an InputDataError naming the file and column."""
    if name not in schema.names:
        mapped = f" (mapped from {canonical} in input.columns)" if name != canonical else ""
        raise InputDataError(f"{path}: missing column {name!r}{mapped}; the file has {schema.names}; "
                             f"map yours with input.columns.{canonical}")
    kind = schema.field(name).type
    if _is_text(kind):
        return pl.String()
    if canonical in ID_COLUMNS and pa.types.is_integer(kind):
        return pl.Int64()
    expected = "string or integer" if canonical in ID_COLUMNS else "string"
    raise InputDataError(f"{path}: column {name!r} ({canonical}) has type {kind}; expected {expected}")


def _kept_type(file: InputFile, schema: pa.Schema, name: str) -> pl.DataType:
    if name not in schema.names:
        if name in dict(file.partition):
            return pl.String()  # a partition directory's value, as the path spells it
        raise InputDataError(f"{file.path}: output.keep_columns names {name!r}, which the file lacks (nor is there "
                             f"a partition directory {name}=... above it)")
    kind = schema.field(name).type
    if _is_text(kind):
        return pl.String()
    if pa.types.is_integer(kind):
        return pl.Int64()
    empty = pl.from_arrow(pa.schema([schema.field(name)]).empty_table())
    assert isinstance(empty, pl.DataFrame)
    return empty.schema[name]


def open_input(spec: InputSpec, keep_columns: list[str] | tuple[str, ...] = ()) -> InputFiles:
    """Resolve the input and check every file's columns (one footer read each) before anything reads a row."""
    for extra in keep_columns:
        if extra in CANONICAL_COLUMNS and spec.column(extra) != extra:
            raise InputDataError(f"output.keep_columns names {extra!r}, a canonical column mapped from another "
                                 "column; keep the source column instead")
    files, schema, first, kept_from = [], {}, None, KeptSources()
    paths, root = resolve_input_paths(spec.path)
    for path in paths:
        arrow_schema, file = _read_file(path)
        file = replace(file, partition=partition_values(path, root))
        types = {spec.column(c): _column_type(path, arrow_schema, spec.column(c), c) for c in CANONICAL_COLUMNS}
        types |= {n: _kept_type(file, arrow_schema, n) for n in keep_columns if n not in CANONICAL_COLUMNS}
        kept_from.note(path, [n for n in keep_columns if n not in CANONICAL_COLUMNS], arrow_schema.names)
        if first is None:
            schema, first = types, path
        for name, kind in types.items():
            if kind != schema[name]:
                raise InputDataError(
                    f"{path}: column {name!r} is read as {kind} but as {schema[name]} in {first}; every input file "
                    "needs the same kind of column (text, integer, ...)"
                )
        files.append(file)
    if sum(f.num_rows for f in files) == 0:
        raise InputDataError(
            f"input.path {spec.path}: the input has zero rows, so there is nothing to score; a scheduled job whose "
            "input can be empty should skip this step when `batchrank validate` exits 2 with this message"
        )
    return InputFiles(files, schema, spec, tuple(keep_columns), kept_from.partition_columns())


class KeptSources:
    """Where each kept column comes from: the files' own columns, or their partition directories (never both)."""

    def __init__(self) -> None:
        self.column_in: dict[str, StoragePath] = {}
        self.directory_of: dict[str, StoragePath] = {}

    def note(self, path: StoragePath, kept: list[str], columns: list[str]) -> None:
        for name in kept:
            (self.column_in if name in columns else self.directory_of).setdefault(name, path)
            if name in self.column_in and name in self.directory_of:
                raise InputDataError(
                    f"output.keep_columns names {name!r}, a column of {self.column_in[name]} but a partition "
                    f"directory ({name}=...) of {self.directory_of[name]}, which lacks the column; give every input "
                    "file the column, or none"
                )

    def partition_columns(self) -> tuple[str, ...]:
        return tuple(self.directory_of)
