"""Parquet files wherever they live: footers, whole-file reads, lazy scans and bounded row-range reads.

A local path goes through polars and pyarrow exactly as before (pl.scan_parquet, pq.read_metadata, ...). An object
(storage.ObjectPath) is read through its bucket's pyarrow filesystem, so the credentials and endpoint are the ones
storage.py takes from the environment, for reads and writes alike.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from polars.io.plugins import register_io_source

from batchrank.storage import Location, ObjectPath, filesystem


@contextmanager
def open_parquet(location: Location, metadata: pq.FileMetaData | None = None) -> Iterator[pq.ParquetFile]:
    """A ParquetFile; an object is read with coalesced range requests (pre_buffer), not one request per page."""
    if isinstance(location, ObjectPath):
        with filesystem(location).open_input_file(location.filesystem_path) as handle:
            yield pq.ParquetFile(handle, metadata=metadata, pre_buffer=True)
    else:
        with pq.ParquetFile(location, metadata=metadata) as parquet:
            yield parquet


def read_metadata(location: Location) -> pq.FileMetaData:
    if isinstance(location, ObjectPath):
        return pq.read_metadata(location.filesystem_path, filesystem=filesystem(location))
    return pq.read_metadata(location)


def read_schema(location: Location) -> pa.Schema:
    if isinstance(location, ObjectPath):
        return pq.read_schema(location.filesystem_path, filesystem=filesystem(location))
    return pq.read_schema(location)


def read_frame(location: Location) -> pl.DataFrame:
    """A whole (small) file: a part, a rejects piece."""
    if isinstance(location, ObjectPath):
        return pl.from_arrow(pq.read_table(location.filesystem_path, filesystem=filesystem(location)))  # type: ignore[return-value]
    return pl.read_parquet(location)


def scan(locations: list[Location]) -> pl.LazyFrame:
    """A lazy frame over the files, in order. Objects are read one row group at a time as polars pulls them (the
    streaming engine keeps memory bounded), with only the columns the query needs."""
    if not any(isinstance(location, ObjectPath) for location in locations):
        return pl.scan_parquet([str(p) for p in locations])
    schema = pl.from_arrow(read_schema(locations[0]).empty_table()).schema  # type: ignore[union-attr]

    def row_groups(with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None,
                   batch_size: int | None) -> Iterator[pl.DataFrame]:
        remaining = n_rows
        for location in locations:
            with open_parquet(location) as parquet:
                for group in range(parquet.num_row_groups):
                    if remaining is not None and remaining <= 0:
                        return
                    frame = pl.from_arrow(parquet.read_row_group(group, columns=with_columns))
                    assert isinstance(frame, pl.DataFrame)  # a zero-column table keeps its height (a row count)
                    if predicate is not None:
                        frame = frame.filter(predicate)
                    if remaining is not None:
                        frame = frame.head(remaining)
                        remaining -= frame.height
                    yield frame

    return register_io_source(row_groups, schema=schema, explain_name="parquet objects")


class RowRangeReader:
    """Rows [start, start + count) of a sequence of Parquet files, read as one table, touching only the row groups
    that hold them: a chunk of a terabyte input costs a row group or two, not a scan of the files before it.

    Footers are read once per file and kept. Thread-safe (a Ray actor reads two chunks at once).
    """

    def __init__(self, locations: list[Location], num_rows: list[int] | None = None):
        self.locations = locations
        self._num_rows = num_rows
        self._footers: dict[int, pq.FileMetaData] = {}
        self._lock = threading.Lock()

    def _footer(self, index: int) -> pq.FileMetaData:
        with self._lock:
            if index not in self._footers:
                self._footers[index] = read_metadata(self.locations[index])
            return self._footers[index]

    def _rows_in(self, index: int) -> int:
        return self._num_rows[index] if self._num_rows is not None else self._footer(index).num_rows

    def read(self, start: int, count: int, columns: list[str] | None = None) -> pa.Table:
        tables, offset, end = [], 0, start + count
        for index, location in enumerate(self.locations):
            rows = self._rows_in(index)
            if start < offset + rows and end > offset:
                first, last = max(start - offset, 0), min(end - offset, rows)  # rows of this file, [first, last)
                footer = self._footer(index)
                groups, group_start, skipped = [], 0, None
                for group in range(footer.num_row_groups):
                    size = footer.row_group(group).num_rows
                    if group_start < last and group_start + size > first:
                        groups.append(group)
                        skipped = group_start if skipped is None else skipped
                    group_start += size
                with open_parquet(location, footer) as parquet:
                    table = parquet.read_row_groups(groups, columns=columns)
                tables.append(table.slice(first - (skipped or 0), last - first))
            offset += rows
            if offset >= end:
                break
        if not tables:
            raise IndexError(f"rows {start}..{end - 1} are beyond the {offset} rows of the files")
        return pa.concat_tables(tables)
