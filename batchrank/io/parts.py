"""Scored parts: one Parquet file per chunk, written under a temporary name and renamed into place (in an object
store: uploaded in one piece, which appears whole or not at all)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from batchrank import storage
from batchrank.io import parquet_files
from batchrank.storage import Location, ObjectPath

PART_STATS_KEY = b"batchrank.chunk"


@dataclass(frozen=True)
class ChunkStats:
    """What a part records about how its chunk was scored (kept in the Parquet footer)."""

    chunk_id: int
    pairs: int
    prompt_tokens: int
    truncated_pairs: int
    seconds: float
    finished_at: float
    rejected_pairs: int = 0  # rows of the chunk skipped while scoring (input.on_bad_rows: skip), in rejects/


def rank_within_queries(scored: pl.DataFrame) -> pl.DataFrame:
    """Rank 1 is the highest score of a query; ties keep the input order."""
    return scored.with_columns(
        pl.col("score").rank("ordinal", descending=True).over("query_id").cast(pl.Int32).alias("rank")
    )


def write_part_atomically(frame: pl.DataFrame, destination: Location, stats: ChunkStats) -> None:
    """Write, fsync and rename: a reader sees the whole part or none of it."""
    table = frame.to_arrow()
    metadata = dict(table.schema.metadata or {})
    metadata[PART_STATS_KEY] = json.dumps(asdict(stats)).encode()
    write_table_atomically(table.replace_schema_metadata(metadata), destination)


def write_table_atomically(table: pa.Table | pl.DataFrame, destination: Location) -> None:
    """Write a temporary file, fsync, rename into place; on any error the temporary is removed, the destination
    untouched (a full disk leaves no half-written file behind). An object is written to memory first, then
    uploaded in one piece."""
    if isinstance(table, pl.DataFrame):
        table = table.to_arrow()
    if isinstance(destination, ObjectPath):
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer, compression="zstd")
        storage.write_bytes_atomically(destination, buffer.getvalue())
        return
    with storage.atomic_local_file(destination) as handle:  # streamed to the file: no copy of the part in memory
        pq.write_table(table, handle, compression="zstd")


def read_part_stats(path: Location) -> ChunkStats:
    metadata = parquet_files.read_schema(path).metadata or {}
    return ChunkStats(**json.loads(metadata[PART_STATS_KEY]))
