"""The input in record batches, in row order, each with the global row number of its first row, in memory that a
byte budget sets, whatever the input's layout.

One file is read at a time, one row group at a time, and inside a row group a batch of rows at a time: pyarrow
decodes a column chunk page by page (`pre_buffer` off, a read buffer of READ_BUFFER_BYTES per column), so a row
group of five million rows costs what a batch costs. A batch holds about `batch_bytes` of decoded rows: its row count
follows the largest row size measured so far (every batch is measured; the first from a probe of 1,024 rows) and
the row group's average in its footer; rows much longer than their row group's average can take a batch past it. Only
the columns the caller's expressions use are read. polars' own reader is faster but decodes whole row groups, several
at once, so its memory follows how the input was written (docs/perf-notes.md, entry 35). Columns are never read as
dictionaries: polars would make them Categorical, whose global registry of values only grows.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from batchrank.errors import InputDataError
from batchrank.io.input import InputFiles
from batchrank.io.partitions import literal_columns
from batchrank.storage import StoragePath

READ_BUFFER_BYTES = 4 << 20  # per column being read: a store gets reads of this size, not one per page
_PROBE_ROWS = 1 << 10  # rows decoded to measure a row's size before the first batch
_ROW_OVERHEAD = 16  # bytes a value costs in polars (a string view) beyond its data, per column


class BatchSizer:
    """Rows per batch for `batch_bytes` of decoded rows, from the largest bytes a row measured so far and the row
    group's own average (its footer's sizes: a group of longer rows than the ones before gets smaller batches)."""

    def __init__(self, batch_bytes: int):
        self.batch_bytes = batch_bytes
        self.row_bytes = 0.0

    def measure(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            row_bytes = batch.nbytes / batch.num_rows + _ROW_OVERHEAD * batch.num_columns
            self.row_bytes = max(self.row_bytes, row_bytes)

    def rows(self, group: pq.RowGroupMetaData, columns: list[str]) -> int:
        chunks = [group.column(i) for i in range(group.num_columns)]
        stored = sum(chunk.total_uncompressed_size for chunk in chunks if chunk.path_in_schema in columns)
        row_bytes = max(self.row_bytes, stored / max(1, group.num_rows) + _ROW_OVERHEAD * len(columns))
        return max(1, int(self.batch_bytes / row_bytes))


def input_batches(files: InputFiles, columns: list[pl.Expr | str],
                  batch_bytes: int) -> Iterator[tuple[int, pl.DataFrame]]:
    """(first global row, batch) over the whole input, `columns` computed from the canonical ones (names and
    types, as InputFiles.canonical() casts them), each batch about `batch_bytes` of decoded rows.

    A file that cannot be decoded (corrupt pages, text that is not UTF-8) is an InputDataError that names the file
    and column, not a crash.
    """
    used = _columns_used(columns)
    sources, canonical = files.source_columns(used), files.canonical(used)
    partitions = tuple(name for name in files.partition_columns if used is None or name in used)
    sizer, offset = BatchSizer(batch_bytes), 0
    for file in files.files:
        constants = literal_columns(file.partition, partitions)  # kept values of the file's partition directories
        for batch in _file_batches(file.path, sources, sizer):
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            # one plan: the file's partition values, the casts and the caller's columns
            yield offset, frame.lazy().with_columns(constants).select(canonical).select(columns).collect()
            offset += batch.num_rows


def _columns_used(columns: list[pl.Expr | str]) -> set[str] | None:
    """The canonical (or kept) columns the expressions read; None for all of them (`pl.all()`)."""
    used: set[str] = set()
    for column in columns:
        roots = [column] if isinstance(column, str) else column.meta.root_names()
        if not roots:
            return None
        used.update(roots)
    return used


def _file_batches(path: StoragePath, columns: list[str], sizer: BatchSizer) -> Iterator[pa.RecordBatch]:
    try:
        with path.open_input_file() as handle:
            parquet = _streamed(handle)
            footer = parquet.metadata
            for groups in _runs_of_groups(footer):
                if not sizer.row_bytes:
                    probe = parquet.iter_batches(batch_size=_PROBE_ROWS, row_groups=groups[:1], columns=columns)
                    sizer.measure(_checked(next(probe)))
                    probe.close()
                rows = min(sizer.rows(footer.row_group(group), columns) for group in groups)
                for batch in parquet.iter_batches(batch_size=rows, row_groups=groups, columns=columns):
                    sizer.measure(_checked(batch))
                    yield batch
    except (pa.ArrowException, OSError) as error:
        raise InputDataError(describe_unreadable(path, columns, error)) from None


def _runs_of_groups(footer: pq.FileMetaData) -> Iterator[list[int]]:
    """The file's non-empty row groups in runs read by one call (a call per row group costs milliseconds): a run
    ends where a group's rows are twice as long, by its footer, as its run's first group's."""
    run: list[int] = []
    first_bytes = 0.0
    for group in range(footer.num_row_groups):
        meta = footer.row_group(group)
        if not meta.num_rows:
            continue
        row_bytes = meta.total_byte_size / meta.num_rows
        if run and row_bytes > 2 * first_bytes:
            yield run
            run = []
        if not run:
            first_bytes = row_bytes
        run.append(group)
    if run:
        yield run


def _streamed(handle: pa.NativeFile) -> pq.ParquetFile:
    """A Parquet file read page by page: no pre-buffering of whole column chunks, READ_BUFFER_BYTES per column."""
    return pq.ParquetFile(handle, pre_buffer=False, buffer_size=READ_BUFFER_BYTES)


def _checked(batch: pa.RecordBatch) -> pa.RecordBatch:
    batch.validate(full=True)  # text that is not UTF-8 is refused here: polars takes Arrow strings as they are
    return batch


def row_numbers(offset: int, rows: int, name: str = "input_row") -> pl.Series:
    """The global row numbers of a batch of `rows` rows whose first is row `offset`."""
    return pl.Series(name, np.arange(offset, offset + rows, dtype=np.int64))


def describe_unreadable(path: StoragePath, columns: list[str], error: BaseException) -> str:
    """Which column of an input file cannot be decoded; re-reads the file column by column, a batch at a time, only
    on this error path."""
    for column in columns:
        try:
            with path.open_input_file() as handle:
                for batch in _streamed(handle).iter_batches(batch_size=_PROBE_ROWS, columns=[column]):
                    _checked(batch)
        except (pa.ArrowException, OSError) as column_error:
            reason = str(column_error).splitlines()[0]
            return f"{path}: column {column!r} cannot be read ({reason}); the file is corrupt or not UTF-8 text"
    return f"{path}: the input cannot be read ({str(error).splitlines()[0]})"
