"""The checks of one row (nulls, blanks), computed batch by batch, and the streaming tallies over them: rows per
check with the first offending row, and exact length statistics from a histogram of lengths."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

# A text is blank when it holds nothing but whitespace, control characters (NUL, ESC, ...) and invisible format
# characters (zero-width space, BOM): the model would see no words. Other text is kept exactly as it is.
_VISIBLE = r"[^\s\p{Cc}\p{Cf}]"

# In order: a row failing several checks is rejected for the first one.
ROW_CHECKS = ("query_id is null", "query_id is empty", "doc_id is null", "doc_id is empty",
              "query is null", "query is empty", "document is null", "document is empty")
FLAGS = tuple(f"_check{i}" for i in range(len(ROW_CHECKS)))


def _blank(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.String).str.contains(_VISIBLE).not_().fill_null(False)


def check_columns() -> list[pl.Expr]:
    """One boolean column per check (FLAGS, in ROW_CHECKS order), and the stripped text lengths (null: null)."""
    masks = (pl.col("query_id").is_null(), _blank("query_id"), pl.col("doc_id").is_null(), _blank("doc_id"),
             pl.col("query").is_null(), _blank("query"), pl.col("document").is_null(), _blank("document"))
    return [*(mask.alias(name) for mask, name in zip(masks, FLAGS, strict=True)),
            pl.col("query").str.strip_chars().str.len_chars().alias("_query_chars"),
            pl.col("document").str.strip_chars().str.len_chars().alias("_doc_chars")]


def reason_column() -> pl.Expr:
    """Why a row is rejected by the row checks (the first failing one), null for a row that passes them all."""
    reason = pl.lit(None, dtype=pl.String)
    for flag, what in zip(reversed(FLAGS), reversed(ROW_CHECKS), strict=True):
        reason = pl.when(pl.col(flag)).then(pl.lit(what)).otherwise(reason)
    return reason


@dataclass
class FirstRow:
    """The first row a check failed on, with its ids, and how many rows failed it."""

    row: int
    query_id: Any
    doc_id: Any
    count: int = 1


@dataclass
class CheckTally:
    """Rows failing each check, over every batch: counts and the first offending row of each."""

    found: dict[str, FirstRow] = field(default_factory=dict)

    def add(self, offset: int, batch: pl.DataFrame) -> pl.Series:
        """Tally one batch (with FLAGS); returns its mask of rows failing any check."""
        counts = batch.select(pl.col(FLAGS).sum()).row(0)
        for what, flag, count in zip(ROW_CHECKS, FLAGS, counts, strict=True):
            if count:
                self.note(what, offset, batch, batch[flag], count)
        return batch.select(pl.any_horizontal(FLAGS).alias("bad"))["bad"]

    def note(self, what: str, offset: int, batch: pl.DataFrame, mask: pl.Series, count: int) -> None:
        """Record `count` more rows failing `what`; the first of `mask` is the first offending row if none was."""
        if what in self.found:
            self.found[what].count += count
            return
        first = int(mask.arg_true()[0])
        self.found[what] = FirstRow(offset + first, batch["query_id"][first], batch["doc_id"][first], count)


class LengthHistogram:
    """Counts of stripped text lengths (nulls left out): exact min, mean, p50, p95 and max in bounded memory."""

    DENSE = 1 << 16  # lengths below this are counted in an array; longer ones (rare) in a dict

    def __init__(self) -> None:
        self.dense = np.zeros(self.DENSE, dtype=np.int64)
        self.sparse: dict[int, int] = {}
        self.total = 0

    def add(self, lengths: pl.Series) -> None:
        values = lengths.drop_nulls().to_numpy()
        if not values.size:
            return
        self.total += int(values.sum(dtype=np.int64))
        if values.max() < self.DENSE:
            self.dense += np.bincount(values, minlength=self.DENSE)
            return
        short = values < self.DENSE
        self.dense += np.bincount(values[short], minlength=self.DENSE)
        if not short.all():
            for value, count in zip(*np.unique(values[~short], return_counts=True), strict=True):
                self.sparse[int(value)] = self.sparse.get(int(value), 0) + int(count)

    def stats(self) -> dict[str, float]:
        lengths = np.concatenate([np.flatnonzero(self.dense), np.array(sorted(self.sparse), dtype=np.int64)])
        counts = np.concatenate([self.dense[self.dense > 0], np.array([self.sparse[k] for k in sorted(self.sparse)],
                                                                      dtype=np.int64)])
        n = int(counts.sum())
        if n == 0:
            return {}
        ends = np.cumsum(counts)  # the sorted lengths' ranks: lengths[i] fills ranks [ends[i-1], ends[i])

        def quantile(q: float) -> int:  # polars' default ("nearest"): the value at rank round(q * (n - 1))
            rank = int(np.floor(q * (n - 1) + 0.5))
            return int(lengths[np.searchsorted(ends, rank, side="right")])

        return {"min": int(lengths[0]), "mean": round(self.total / n, 1), "p50": quantile(0.5),
                "p95": quantile(0.95), "max": int(lengths[-1])}
