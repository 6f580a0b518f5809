"""Scored parts: one Parquet file per chunk, written atomically, with how its chunk was scored in the footer."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from batchrank.io import parquet_files
from batchrank.storage import StoragePath

PART_STATS_KEY = b"batchrank.chunk"
INPUT_ROW = "input_row"  # a part's column: the row's global row number in the job's input (0 = the first file's first)


@dataclass(frozen=True)
class ChunkStats:
    """What a part records about how its chunk was scored (kept in the Parquet footer)."""

    chunk_id: int
    pairs: int
    prompt_tokens: int
    truncated_pairs: int
    seconds: float  # the chunk's share of its engine's busy time (see pipeline.score's EngineLoop)
    finished_at: float  # time.time() when its scores were in
    rejected_pairs: int = 0  # rows of the chunk skipped while scoring (input.on_bad_rows: skip), in rejects/
    worker: str = ""  # the engine that scored it (worker-0, ...): per-engine rates, and a sum per engine


@dataclass(frozen=True)
class PartWritten:
    """A finished chunk as the driver records it (the ledger): its stats and the sizes of the files written."""

    stats: ChunkStats
    part_bytes: int
    rejects_bytes: int = 0
    part_mtime_ns: int = 0  # the part's modification time as its storage lists it (0: unknown)


def rank_within_queries(scored: pl.DataFrame) -> pl.DataFrame:
    """Rank 1 is the highest score of a query; ties keep the input order."""
    return scored.with_columns(
        pl.col("score").rank("ordinal", descending=True).over("query_id").cast(pl.Int32).alias("rank")
    )


def write_table(table: pa.Table | pl.DataFrame, destination: StoragePath) -> int:
    """Write a Parquet file atomically (zstd); returns its size in bytes. On any error the destination is left as it
    was and no temporary remains."""
    if isinstance(table, pl.DataFrame):
        table = table.to_arrow()
    with destination.atomic_writer() as handle:  # streamed to the file: no copy of the part in memory
        pq.write_table(table, handle, compression="zstd")
        return handle.tell()


def write_part(frame: pl.DataFrame, destination: StoragePath, stats: ChunkStats) -> int:
    """A chunk's scores with its stats in the footer; returns the part's size in bytes."""
    table = frame.to_arrow()
    metadata = dict(table.schema.metadata or {})
    metadata[PART_STATS_KEY] = json.dumps(asdict(stats)).encode()
    return write_table(table.replace_schema_metadata(metadata), destination)


def read_part_stats(path: StoragePath) -> ChunkStats:
    metadata = parquet_files.read_schema(path).metadata or {}
    return ChunkStats(**json.loads(metadata[PART_STATS_KEY]))
