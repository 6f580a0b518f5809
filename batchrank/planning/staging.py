"""A copy of the input grouped by query, for inputs whose queries' rows are scattered (or that drop bad rows).

The copy is made by an external sort whose memory is bounded by a setting (`run.staging_sort_mib`), not by the
input. One pass over the input spills each row, tagged with its query's rank (order of first appearance), into the
bucket of consecutive ranks that holds it: files on local scratch disk, the buckets cut from the query sizes so that
each holds about the budget's rows (or one query larger than that alone). Then the buckets, in rank order, are each
read back, sorted by rank in memory (stably: a bucket's rows are already in input order) and appended to the staged
Parquet file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchrank.io.batches import input_batches, row_numbers
from batchrank.io.input import InputFiles
from batchrank.output.layout import SOURCE_ROW
from batchrank.planning.background import SerialWriter
from batchrank.planning.reject_stream import RowCursor
from batchrank.planning.spill import FrameSpill
from batchrank.storage import StoragePath

# Row groups of the staged copy: a chunk is read by the row groups that hold it, so smaller ones cost less.
STAGED_ROW_GROUP_ROWS = 10_000
# A bucket in memory takes about this many times the size of its rows as the input's first batch measures them
# (the rows read back, their sorted order, a row group converted for writing); measured in docs/perf-notes.md.
SORT_MEMORY_FACTOR = 2.5
_RANK = "__batchrank_rank"
_REPEATED = ["query_id", "query"]


def bucket_of_ranks(sizes: np.ndarray, bucket_rows: int) -> np.ndarray:
    """For each query (by rank), its bucket: consecutive queries of about `bucket_rows` rows in all per bucket (a
    query bigger than that is a bucket of its own), buckets numbered 0, 1, ... in rank order."""
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]) if len(sizes) else np.zeros(0, dtype=np.int64)
    _, buckets = np.unique(starts // max(1, bucket_rows), return_inverse=True)
    return buckets.astype(np.int64)


def stage_grouped_copy(files: InputFiles, destination: StoragePath, queries: pl.DataFrame,
                       excluded: Iterator[np.ndarray] | None, scratch: Path, memory_bytes: int) -> int:
    """Write the input's rows to score grouped by query (queries in the order of `queries`: query_id, rows), rows in
    input order inside a query; returns the number of buckets sorted.

    Rows listed by `excluded` (ascending global row numbers: the rejects of `input.on_bad_rows: skip`) are left out,
    so every planned row is scored exactly once. Each staged row keeps its input row number in SOURCE_ROW. The copy
    is written into a local file, then renamed or uploaded into place whole.
    """
    ranks = queries.select("query_id", pl.int_range(pl.len(), dtype=pl.Int64).alias(_RANK))
    sizes = queries["rows"].to_numpy()
    skip = RowCursor(excluded) if excluded is not None else None
    spill, buckets = None, np.zeros(0, dtype=np.int64)
    for offset, batch in input_batches(files, [pl.all()]):
        rows = row_numbers(offset, batch.height, SOURCE_ROW)
        frame = batch.with_columns(rows).join(ranks, on="query_id", how="left", maintain_order="left")
        if skip is not None:
            frame = frame.filter(pl.Series(~skip.mask(offset, batch.height)))
        frame = frame.filter(pl.col(_RANK).is_not_null())  # a query none of whose rows is scored
        if spill is None:  # the first batch tells the size of a row in memory
            row_bytes = 16 + batch.estimated_size() / batch.height
            buckets = bucket_of_ranks(sizes, int(memory_bytes / (row_bytes * SORT_MEMORY_FACTOR)))
            spill = FrameSpill(scratch / "staging", int(buckets.max()) + 1 if len(buckets) else 1, "bucket",
                               background=True)
        spill.append(frame, buckets[frame[_RANK].to_numpy()])
    assert spill is not None, "open_input refuses an input of zero rows"
    spill.close()
    columns = [SOURCE_ROW, *files.scan().collect_schema().names()]
    with destination.local_staging_file() as local:
        _write_buckets(spill, columns, local)
    return spill.partitions


def _write_buckets(spill: FrameSpill, columns: list[str], local: Path) -> None:
    """Each bucket in rank order: read back as Arrow, its rows put in rank order (a stable sort, so input order
    inside a query) and taken a row group at a time, while a second thread encodes and writes the row groups."""
    writer, background = None, SerialWriter(pending=8, name="batchrank-staging")
    try:
        for index in range(spill.partitions):
            bucket = spill.read_arrow(index)
            spill.remove(index)
            if bucket is None:
                continue
            order = pc.sort_indices(bucket, sort_keys=[(_RANK, "ascending")])  # stable
            bucket = bucket.select(columns).combine_chunks()  # a take across many chunks costs per chunk
            if writer is None:
                # Dictionaries only where values repeat (a query's id and text on each of its rows): a dictionary
                # tried on documents costs time and saves nothing. LZ4: the copy is read once per chunk.
                writer = pq.ParquetWriter(local, bucket.schema, compression="lz4", use_dictionary=_REPEATED)
            for start in range(0, len(order), STAGED_ROW_GROUP_ROWS):
                background.submit(writer.write_table, bucket.take(order[start:start + STAGED_ROW_GROUP_ROWS]))
        background.flush()
    finally:
        background.close()
        if writer is not None:
            writer.close()
