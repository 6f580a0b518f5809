"""A copy of the input grouped by query, for inputs whose queries' rows are scattered (or that drop bad rows)."""

from __future__ import annotations

import polars as pl

from batchrank.storage import StoragePath

SOURCE_ROW = "__batchrank_source_row"  # a staged row's global row number in the input (names file and row)
# Row groups of the staged copy: a chunk is read by the row groups that hold it, so smaller ones cost less.
STAGED_ROW_GROUP_ROWS = 10_000


def stage_grouped_copy(pairs: pl.LazyFrame, destination: StoragePath, exclude_rows: pl.Series | None = None) -> None:
    """Write the input grouped by query (queries in order of first appearance, rows in input order).

    Rows whose global row number is in `exclude_rows` (rejected under `input.on_bad_rows: skip`) are left out, so
    every planned row is scored exactly once. Each staged row keeps its input row number in SOURCE_ROW. The copy is
    sorted into a local file (polars spills a big sort to disk there), then renamed or uploaded into place whole.
    """
    staged = pairs.with_row_index(SOURCE_ROW)
    if exclude_rows is not None and len(exclude_rows):
        staged = staged.filter(~pl.col(SOURCE_ROW).cast(pl.Int64).is_in(exclude_rows.cast(pl.Int64).implode()))
    grouped = (
        staged.with_columns(pl.col(SOURCE_ROW).min().over("query_id").alias("_first"))
        .sort(["_first", SOURCE_ROW])
        .drop("_first")
    )
    with destination.local_staging_file() as local:
        grouped.sink_parquet(local, row_group_size=STAGED_ROW_GROUP_ROWS)
