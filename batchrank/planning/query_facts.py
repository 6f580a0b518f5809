"""Per-query facts gathered batch by batch, in memory that follows the number of queries, not of pairs: each
query's rows that pass the row checks (how many, the first and the last), and the query text of its first one.

Each batch is aggregated on its own; the partial facts are merged whenever they outgrow the merged ones, so the
merging costs O(rows) over the input (geometric batching) while holding O(queries) rows.
"""

from __future__ import annotations

import polars as pl

from batchrank.planning.spill import compact_arrow

_MERGE_AT_LEAST = 1 << 20  # partial facts held before a merge, at least


class QueryFactsBuilder:
    def __init__(self, id_type: pl.DataType) -> None:
        self.id_type = id_type
        self.merged: pl.DataFrame | None = None
        self.pending: list[pl.DataFrame] = []
        self.pending_rows = 0
        self.other_ids: list[pl.Series] = []  # ids of queries seen only in rows that fail a check (so far)

    def add(self, offset: int, batch: pl.DataFrame, bad: pl.Series | None) -> None:
        """One batch (query_id, query, in input order); `bad` marks its rows that fail a row check."""
        rows = batch.select("query_id", "query").with_row_index("_i")
        if bad is not None and bad.any():
            self.other_ids.append(compact_strings(rows.filter(bad).select(pl.col("query_id").unique()))["query_id"])
            rows = rows.filter(~bad)
        facts = rows.group_by("query_id").agg(
            pl.len().cast(pl.UInt64).alias("rows"), (pl.col("_i").first().cast(pl.Int64) + offset).alias("first"),
            (pl.col("_i").last().cast(pl.Int64) + offset).alias("last"), pl.col("query").first().alias("text"),
        )
        self.pending.append(compact_strings(facts))
        self.pending_rows += facts.height
        if self.pending_rows >= max(_MERGE_AT_LEAST, self.merged.height if self.merged is not None else 0):
            self._merge()

    def _merge(self) -> None:
        if not self.pending:
            return
        parts = ([self.merged] if self.merged is not None else []) + self.pending
        self.merged = pl.concat(parts).group_by("query_id").agg(
            pl.col("rows").sum(), pl.col("first").min(), pl.col("last").max(),
            pl.col("text").get(pl.col("first").arg_min()),
        )
        self.pending, self.pending_rows = [], 0
        if len(self.other_ids) > 1:
            self.other_ids = [pl.concat(self.other_ids).unique()]

    def finish(self) -> tuple[pl.DataFrame, int]:
        """The facts (query_id, rows, first, last, text), queries in order of their first valid row, and the
        number of distinct query_id values of the whole input (null counts as one, as polars' n_unique has it)."""
        self._merge()
        if self.merged is None:
            schema = {"query_id": self.id_type, "rows": pl.UInt64, "first": pl.Int64, "last": pl.Int64,
                      "text": pl.String}
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


def contiguous(facts: pl.DataFrame) -> bool:
    """Each query's rows are one contiguous run of the input."""
    return bool((facts["last"] - facts["first"] + 1 == facts["rows"].cast(pl.Int64)).all())
