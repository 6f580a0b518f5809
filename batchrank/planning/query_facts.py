"""Per-query facts gathered batch by batch, in memory that follows the number of queries, not of pairs: each
query's rows that are kept (how many, the first and the last), and, from the row pass, the query text of its first
one (for the too-long check).

The plan's query sizes are these facts over the input less the reject stream's rows: the row pass gathers them over
the rows that pass the row checks, which is that whenever no later check rejects a row; otherwise
`facts_of_rows_left` gathers them again in one pass over query_id, leaving out every row the stream holds.

Each batch is aggregated on its own; the partial facts are merged whenever they outgrow the merged ones, so the
merging costs O(rows) over the input (geometric batching) while holding O(queries) rows.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl

from batchrank.io.batches import input_batches
from batchrank.io.input import InputFiles
from batchrank.planning.reject_stream import RowCursor
from batchrank.planning.spill import compact_arrow


class QueryFactsBuilder:
    """Facts over the rows kept: query_id, rows, first, last, and with `texts` the first row's text; with
    `all_ids`, the number of distinct query_id values of every row too (`finish`)."""

    def __init__(self, id_type: pl.DataType, batch_bytes: int, texts: bool = True, all_ids: bool = True) -> None:
        """`batch_bytes`: partial facts held before a merge, at least (the bytes of a batch read)."""
        self.id_type, self.merge_at_least, self.texts, self.all_ids = id_type, batch_bytes, texts, all_ids
        self.merged: pl.DataFrame | None = None
        self.merged_bytes = 0
        self.pending: list[pl.DataFrame] = []
        self.pending_bytes = 0
        self.other_ids: list[pl.Series] = []  # ids of queries seen only in rows that fail a check (so far)

    def add(self, offset: int, batch: pl.DataFrame, left_out: pl.Series | None) -> None:
        """One batch (query_id and, with texts, query; in input order); `left_out` marks rows not kept."""
        rows = batch.select("query_id", *(["query"] if self.texts else [])).with_row_index("_i")
        if left_out is not None and left_out.any():
            if self.all_ids:
                ids = rows.filter(left_out).select(pl.col("query_id").unique())
                self.other_ids.append(compact_strings(ids)["query_id"])
            rows = rows.filter(~left_out)
        facts = rows.group_by("query_id").agg(
            pl.len().cast(pl.UInt64).alias("rows"), (pl.col("_i").first().cast(pl.Int64) + offset).alias("first"),
            (pl.col("_i").last().cast(pl.Int64) + offset).alias("last"),
            *([pl.col("query").first().alias("text")] if self.texts else []),
        )
        self.pending.append(compact_strings(facts))
        self.pending_bytes += self.pending[-1].estimated_size()
        if self.pending_bytes >= max(self.merge_at_least, self.merged_bytes):
            self._merge()

    def _merge(self) -> None:
        if not self.pending:
            return
        parts = ([self.merged] if self.merged is not None else []) + self.pending
        self.merged = pl.concat(parts).group_by("query_id").agg(
            pl.col("rows").sum(), pl.col("first").min(), pl.col("last").max(),
            *([pl.col("text").get(pl.col("first").arg_min())] if self.texts else []),
        )
        self.pending, self.pending_bytes = [], 0
        self.merged_bytes = self.merged.estimated_size()
        if len(self.other_ids) > 1:
            self.other_ids = [pl.concat(self.other_ids).unique()]

    def finish(self) -> tuple[pl.DataFrame, int]:
        """The facts (query_id, rows, first, last, text), queries in order of their first valid row, and the
        number of distinct query_id values of the whole input (null counts as one, as polars' n_unique has it)."""
        self._merge()
        if self.merged is None:
            schema = {"query_id": self.id_type, "rows": pl.UInt64, "first": pl.Int64, "last": pl.Int64}
            schema |= {"text": pl.String} if self.texts else {}
            return pl.DataFrame(schema=schema), _distinct(self.other_ids)
        facts = self.merged.sort("first")
        return facts, _distinct([facts["query_id"], *self.other_ids])


def compact_strings(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with its text in buffers of its own (spill.compact_arrow), so that facts held across batches do not
    keep every batch alive."""
    if pl.String not in frame.schema.values():
        return frame
    compacted = pl.from_arrow(compact_arrow(frame))
    assert isinstance(compacted, pl.DataFrame)
    return compacted


def _distinct(ids: list[pl.Series]) -> int:
    return pl.concat(ids).n_unique() if ids else 0


def facts_of_rows_left(files: InputFiles, rejected: Iterator[np.ndarray], batch_bytes: int) -> pl.DataFrame:
    """The facts (query_id, rows, first, last) of the input's rows that are not among `rejected` (ascending input
    row numbers), in one pass over the query_id column."""
    builder = QueryFactsBuilder(files.schema[files.spec.column("query_id")], batch_bytes, texts=False, all_ids=False)
    left_out = RowCursor(rejected)
    for offset, batch in input_batches(files, ["query_id"], batch_bytes):
        builder.add(offset, batch, pl.Series(left_out.mask(offset, batch.height)))
    return builder.finish()[0]


def contiguous(facts: pl.DataFrame) -> bool:
    """Each query's rows are one contiguous run of the input."""
    return bool((facts["last"] - facts["first"] + 1 == facts["rows"].cast(pl.Int64)).all())
