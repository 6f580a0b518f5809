"""A copy of the input grouped by query, for inputs whose queries' rows are scattered (or that drop bad rows).

The copy is made by an external sort whose memory is bounded by settings (`run.plan_read_mib` while the input is
read, `run.staging_sort_mib` while a bucket is sorted), not by the input. One pass over the input spills each row,
tagged with its query's rank (order of first appearance), into the bucket of consecutive ranks that holds it: files
on local scratch disk, the buckets cut from the query sizes so that each holds about the budget's rows, as the
input's first batch measures a row. Then the buckets, in rank order, are each read back, sorted by rank in memory
(stably: a bucket's rows are already in input order) and appended to the staged Parquet file. A bucket that came
out larger than the budget (longer rows than the first batch's) is read back once per slice of its ranks that fits;
a slice of one query is not sorted at all (its rows are in input order), only streamed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchrank.io.batches import input_batches, row_numbers
from batchrank.io.input import InputFiles
from batchrank.output.layout import SOURCE_ROW
from batchrank.planning.background import SerialWriter
from batchrank.planning.memory import SPILL_WRITES_QUEUED, PlanMemory
from batchrank.planning.reject_stream import RowCursor
from batchrank.planning.spill import FrameSpill
from batchrank.storage import StoragePath

# Row groups of the staged copy: a chunk is read by the row groups that hold it, so smaller ones cost less.
STAGED_ROW_GROUP_ROWS = 10_000
# A bucket in memory takes about this many times the size of its rows as Arrow holds them (the rows read back,
# their sorted order, a row group converted for writing); measured in docs/perf-notes.md.
SORT_MEMORY_FACTOR = 2.5
_RANK = "__batchrank_rank"
_REPEATED = ["query_id", "query"]


@dataclass(frozen=True)
class Staged:
    buckets: int  # buckets the rows were spilled into
    sliced: int  # of those, the ones over the sort budget, read back once per slice of their ranks


def bucket_of_ranks(sizes: np.ndarray, bucket_rows: int) -> np.ndarray:
    """For each query (by rank), its bucket: consecutive queries of about `bucket_rows` rows in all per bucket (a
    query bigger than that is a bucket of its own), buckets numbered 0, 1, ... in rank order."""
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]) if len(sizes) else np.zeros(0, dtype=np.int64)
    _, buckets = np.unique(starts // max(1, bucket_rows), return_inverse=True)
    return buckets.astype(np.int64)


def stage_grouped_copy(files: InputFiles, destination: StoragePath, queries: pl.DataFrame,
                       excluded: Iterator[np.ndarray] | None, scratch: Path, memory: PlanMemory) -> Staged:
    """Write the input's rows to score grouped by query (queries in the order of `queries`: query_id, rows), rows in
    input order inside a query.

    Rows listed by `excluded` (ascending global row numbers: the rejects of `input.on_bad_rows: skip`) are left out,
    so every planned row is scored exactly once. Each staged row keeps its input row number in SOURCE_ROW. The copy
    is written into a local file, then renamed or uploaded into place whole.
    """
    ranks = queries.select("query_id", pl.int_range(pl.len(), dtype=pl.Int64).alias(_RANK))
    sizes = queries["rows"].to_numpy()
    skip = RowCursor(excluded) if excluded is not None else None
    spill, buckets = None, np.zeros(0, dtype=np.int64)
    for offset, batch in input_batches(files, [pl.all()], memory.batch_bytes):
        rows = row_numbers(offset, batch.height, SOURCE_ROW)
        frame = batch.with_columns(rows).join(ranks, on="query_id", how="left", maintain_order="left")
        if skip is not None:
            frame = frame.filter(pl.Series(~skip.mask(offset, batch.height)))
        frame = frame.filter(pl.col(_RANK).is_not_null())  # a query none of whose rows is scored
        if spill is None:  # the first batch tells the size of a row in memory
            row_bytes = 16 + batch.estimated_size() / batch.height
            buckets = bucket_of_ranks(sizes, int(memory.sort_bytes / (row_bytes * SORT_MEMORY_FACTOR)))
            spill = FrameSpill(scratch / "staging", int(buckets.max()) + 1 if len(buckets) else 1, "bucket",
                               writes_queued=SPILL_WRITES_QUEUED)
        spill.append(frame, buckets[frame[_RANK].to_numpy()])
    assert spill is not None, "open_input refuses an input of zero rows"
    spill.close()
    columns = [SOURCE_ROW, *files.scan().collect_schema().names()]
    with destination.local_staging_file() as local:
        sliced = _write_buckets(spill, _rank_ranges(buckets), sizes, columns, local, memory.sort_bytes)
    return Staged(spill.partitions, sliced)


def _rank_ranges(buckets: np.ndarray) -> list[tuple[int, int]]:
    """Each bucket's ranks, [first, end), in bucket order."""
    ends = np.cumsum(np.bincount(buckets)) if len(buckets) else np.zeros(0, dtype=np.int64)
    return [(int(end - count), int(end)) for end, count in zip(ends, np.bincount(buckets), strict=True)]


def _write_buckets(spill: FrameSpill, ranges: list[tuple[int, int]], sizes: np.ndarray, columns: list[str],
                   local: Path, sort_bytes: int) -> int:
    """Each bucket in rank order: read back as Arrow, its rows put in rank order (a stable sort, so input order
    inside a query) and taken a row group at a time, while a second thread encodes and writes the row groups.
    Returns how many buckets were over the budget (written in slices)."""
    staged, sliced = _StagedWriter(local, SerialWriter(pending=8, name="batchrank-staging")), 0
    try:
        for index, (first, end) in enumerate(ranges):
            if spill.bytes[index] * SORT_MEMORY_FACTOR <= sort_bytes:
                bucket = spill.read_arrow(index)
                if bucket is not None:
                    staged.write_sorted(bucket, columns)
            else:
                _write_in_slices(spill, index, first, end, sizes, columns, staged, sort_bytes)
                sliced += 1
            spill.remove(index)
        staged.flush()
    finally:
        staged.close()
    return sliced


def _write_in_slices(spill: FrameSpill, index: int, first: int, end: int, sizes: np.ndarray, columns: list[str],
                     staged: _StagedWriter, sort_bytes: int) -> None:
    """A bucket over the budget, one slice of its ranks at a time (each slice a read of the bucket's file): slices
    cut by rows to fit, halved again when one still holds too many bytes; one query alone is streamed unsorted."""
    pieces = int(np.ceil(spill.bytes[index] * SORT_MEMORY_FACTOR / sort_bytes))
    cuts = bucket_of_ranks(sizes[first:end], max(1, int(sizes[first:end].sum() // pieces)))
    todo = [(first + int(a), first + int(b)) for a, b in _rank_ranges(cuts)][::-1]
    while todo:
        low, high = todo.pop()
        if high - low == 1:
            for batch in _ranks_between(spill, index, low, high):
                staged.write_in_order(batch, columns)
            continue
        held, held_bytes = [], 0
        for batch in _ranks_between(spill, index, low, high):
            held.append(batch)
            held_bytes += batch.nbytes
            if held_bytes * SORT_MEMORY_FACTOR > sort_bytes:
                break
        if held_bytes * SORT_MEMORY_FACTOR > sort_bytes:
            middle = (low + high) // 2
            todo += [(middle, high), (low, middle)]
        elif held:
            staged.write_sorted(pa.Table.from_batches(held), columns)


def _ranks_between(spill: FrameSpill, index: int, low: int, high: int) -> Iterator[pa.RecordBatch]:
    for batch in spill.arrow_batches(index):
        rank = batch.column(_RANK)
        kept = batch.filter(pc.and_(pc.greater_equal(rank, low), pc.less(rank, high)))
        if kept.num_rows:
            yield kept


class _StagedWriter:
    """The staged copy's Parquet file, written a row group at a time by a background thread."""

    def __init__(self, local: Path, background: SerialWriter):
        self.local, self.background = local, background
        self.writer: pq.ParquetWriter | None = None

    def write_sorted(self, rows: pa.Table, columns: list[str]) -> None:
        order = pc.sort_indices(rows, sort_keys=[(_RANK, "ascending")])  # stable
        rows = rows.select(columns).combine_chunks()  # a take across many chunks costs per chunk
        for start in range(0, len(order), STAGED_ROW_GROUP_ROWS):
            self._write(rows.take(order[start:start + STAGED_ROW_GROUP_ROWS]))

    def write_in_order(self, batch: pa.RecordBatch, columns: list[str]) -> None:
        rows = pa.Table.from_batches([batch]).select(columns)
        for start in range(0, rows.num_rows, STAGED_ROW_GROUP_ROWS):
            self._write(rows.slice(start, STAGED_ROW_GROUP_ROWS))

    def _write(self, table: pa.Table) -> None:
        if self.writer is None:
            # Dictionaries only where values repeat (a query's id and text on each of its rows): a dictionary tried
            # on documents costs time and saves nothing. LZ4: the copy is read once per chunk.
            self.writer = pq.ParquetWriter(self.local, table.schema, compression="lz4", use_dictionary=_REPEATED)
        self.background.submit(self.writer.write_table, table)

    def flush(self) -> None:
        self.background.flush()

    def close(self) -> None:
        try:
            self.background.close()
        finally:
            if self.writer is not None:
                self.writer.close()
