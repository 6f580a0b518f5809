"""Parquet files wherever they live: footers, whole-file reads, lazy scans and bounded row-range reads.

Footers and row groups are read through the file's pyarrow filesystem, lazy scans through polars' own reader with
the store settings of storage.py, so local paths and object-store URIs take the same code path.
"""

from __future__ import annotations

import hashlib
import threading

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from batchrank.storage import StoragePath

_MAGIC = b"PAR1"
_TAIL_BYTES = 64 << 10  # a part's footer is a few KiB; an input file's with many row groups may need a second read


def read_metadata(path: StoragePath) -> pq.FileMetaData:
    with path.open_input_file() as handle:
        return pq.read_metadata(handle)


def read_schema(path: StoragePath) -> pa.Schema:
    with path.open_input_file() as handle:
        return pq.read_schema(handle)


def read_footer(path: StoragePath) -> tuple[pq.FileMetaData, str, int]:
    """The footer, a digest of its bytes and the file's size, in one read of the file's tail (a second one only for
    a footer longer than _TAIL_BYTES; in a store, each read is a request). The footer describes every row group
    (rows, byte sizes, offsets, column statistics), so a rewritten file gets another digest while a file that was
    only touched keeps its own."""
    with path.open_input_file() as handle:
        size = handle.size()
        if size < 12:
            raise pa.ArrowInvalid(f"{size} bytes is too small for a Parquet file")
        tail_start = max(0, size - _TAIL_BYTES)
        handle.seek(tail_start)
        tail = handle.read(size - tail_start)
        if tail[-4:] != _MAGIC:
            raise pa.ArrowInvalid("not a Parquet file (no PAR1 at its end)")
        length = int.from_bytes(tail[-8:-4], "little")
        if length > size - 12:
            raise pa.ArrowInvalid("the footer length is larger than the file")
        if length + 8 <= len(tail):
            footer = tail[len(tail) - 8 - length : len(tail) - 8]
        else:
            handle.seek(size - 8 - length)
            footer = handle.read(length)
    metadata = pq.read_metadata(pa.BufferReader(_MAGIC + footer + tail[-8:]))
    return metadata, hashlib.sha256(footer).hexdigest(), size


def read_frame(path: StoragePath) -> pl.DataFrame:
    """A whole (small) file: a part, a rejects piece."""
    with path.open_input_file() as handle:
        frame = pl.from_arrow(pq.read_table(handle))
    assert isinstance(frame, pl.DataFrame)
    return frame


def scan(paths: list[StoragePath]) -> pl.LazyFrame:
    """A lazy frame over the files, in order, read by polars' streaming engine as a query pulls them."""
    sources = [path.polars_source() for path in paths]
    options = next((options for _, options in sources if options is not None), None)
    return pl.scan_parquet([source for source, _ in sources], storage_options=options)


class RowRangeReader:
    """Rows [start, start + count) of a sequence of Parquet files, read as one table, touching only the row groups
    that hold them: a chunk of a terabyte input costs a row group or two, not a scan of the files before it.

    Footers are read once per file and kept. Thread-safe (a worker reads two chunks at once).
    """

    def __init__(self, paths: list[StoragePath], num_rows: list[int] | None = None):
        self.paths = paths
        self._num_rows = num_rows
        self._footers: dict[int, pq.FileMetaData] = {}
        self._lock = threading.Lock()

    def _footer(self, index: int) -> pq.FileMetaData:
        with self._lock:
            if index not in self._footers:
                self._footers[index] = read_metadata(self.paths[index])
            return self._footers[index]

    def _rows_in(self, index: int) -> int:
        return self._num_rows[index] if self._num_rows is not None else self._footer(index).num_rows

    def read(self, start: int, count: int, columns: list[str] | None = None) -> list[pa.Table]:
        """The rows as one table per file they come from (files may differ in types: string, large_string...)."""
        return [table for _, table in self.read_by_file(start, count, columns)]

    def read_by_file(self, start: int, count: int, columns: list[str] | None = None) -> list[tuple[int, pa.Table]]:
        """Like read, each table with the index of the file it comes from."""
        tables, offset, end = [], 0, start + count
        for index, path in enumerate(self.paths):
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
                with path.open_input_file() as handle:
                    # pre_buffer: coalesced range requests in a store, not one request per page
                    parquet = pq.ParquetFile(handle, metadata=footer, pre_buffer=True)
                    table = parquet.read_row_groups(groups, columns=columns)
                tables.append((index, table.slice(first - (skipped or 0), last - first)))
            offset += rows
            if offset >= end:
                break
        if not tables:
            raise IndexError(f"rows {start}..{end - 1} are beyond the {offset} rows of the files")
        return tables
