"""Scored parts: one Parquet file per chunk, written under a temporary name and renamed into place."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

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


def write_part_atomically(frame: pl.DataFrame, destination: Path, stats: ChunkStats) -> None:
    """Write, fsync and rename: a reader sees the whole part or none of it."""
    table = frame.to_arrow()
    metadata = dict(table.schema.metadata or {})
    metadata[PART_STATS_KEY] = json.dumps(asdict(stats)).encode()
    write_table_atomically(table.replace_schema_metadata(metadata), destination)


def write_table_atomically(table: pa.Table | pl.DataFrame, destination: Path) -> None:
    """Write a temporary file, fsync, rename into place; on any error the temporary is removed, the destination
    untouched (a full disk leaves no half-written file behind)."""
    if isinstance(table, pl.DataFrame):
        table = table.to_arrow()
    temporary = destination.with_name(f".{destination.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, destination)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read_part_stats(path: Path) -> ChunkStats:
    metadata = pq.read_schema(path).metadata or {}
    return ChunkStats(**json.loads(metadata[PART_STATS_KEY]))
