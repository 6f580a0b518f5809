"""The second pass over the input, only when the first found a repeated pair hash or a query too long: the ids
(and, for queries too long, the query texts) are read again, batch by batch.

- Rows whose pair hash repeats are spilled with their real ids and confirmed partition by partition
  (duplicates.py), so a hash collision never rejects a good row.
- A query is too long when the text of its first row that passes the row checks leaves no room for any document
  token (the scorer factory's `too_long_queries`, run once on the distinct texts). Its rows with that same text are
  too long; any other text of the same query_id is left to the prepare stage's check, which stays as the safety net.

Under `skip`, a too-long row is rejected for that reason; duplicates are then found among the rows left (as the
row checks' rejects are), and each query's size and first row are corrected for both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from batchrank.io.batches import input_batches, row_numbers
from batchrank.io.input import InputFiles
from batchrank.io.rejects import TOO_LONG_REASON
from batchrank.planning.duplicates import CandidateSpill, pair_hash
from batchrank.planning.reject_runs import ROW_CHECKS_RUN, TOO_LONG_RUN, RejectRuns, RowCursor
from batchrank.planning.row_checks import CheckTally, FirstRow


def long_queries(facts: pl.DataFrame, too_long: Callable[[list[str]], list[int]] | None) -> pl.DataFrame:
    """query_id, text of the queries whose first valid row's text cannot fit (the texts are checked once each)."""
    empty = facts.select("query_id", "text").clear()
    if too_long is None or facts.is_empty():
        return empty
    texts = facts["text"].unique(maintain_order=True)
    positions = too_long(texts.to_list())
    if not positions:
        return empty
    return facts.filter(pl.col("text").is_in(texts.gather(positions).implode())).select("query_id", "text")


@dataclass
class SecondPass:
    duplicate: FirstRow | None  # the first later copy of a repeated pair, and how many later copies
    too_long: FirstRow | None  # the first too-long row, and how many
    dropped: pl.DataFrame  # query_id, dropped: rows of each query rejected in this pass (skip)
    firsts: pl.DataFrame  # query_id, first: the first row left of each too-long query that keeps rows

    def adjust(self, facts: pl.DataFrame) -> pl.DataFrame:
        """The facts with this pass's rejects taken out of each query's rows (and its first row moved on)."""
        return (
            facts.join(self.dropped, on="query_id", how="left", maintain_order="left")
            .join(self.firsts.rename({"first": "_moved"}), on="query_id", how="left", maintain_order="left")
            .with_columns((pl.col("rows").cast(pl.Int64) - pl.col("dropped").fill_null(0)).alias("rows"),
                          pl.coalesce("_moved", "first").alias("first"))
            .drop("dropped", "_moved")
        )


def second_pass(files: InputFiles, scratch: Path, runs: RejectRuns, repeated: np.ndarray, long: pl.DataFrame,
                hash_bits: int) -> SecondPass:
    rows = sum(files.num_rows)
    candidates = CandidateSpill(scratch / "candidates", repeated, rows) if repeated.size else None
    valid = RowCursor(batch["input_row"].to_numpy() for batch in runs.spill.batches(ROW_CHECKS_RUN))
    columns: list[pl.Expr | str] = ["query_id", "doc_id"]
    columns += ["query"] if long.height else []
    columns += [pair_hash(hash_bits).alias("_hash")] if candidates is not None else []
    tally, dropped, firsts = CheckTally(), [], []
    for offset, batch in input_batches(files, columns):
        good = pl.Series(~valid.mask(offset, batch.height))
        too_long = _too_long(batch, long, good) if long.height else pl.Series([False] * batch.height)
        count = int(too_long.sum())
        if count:
            tally.note(TOO_LONG_REASON, offset, batch, too_long, count)
            rejected = _rejects(batch, offset, too_long, TOO_LONG_REASON)
            runs.add(TOO_LONG_RUN, rejected)
            dropped.append(rejected.group_by("query_id").agg(pl.len().cast(pl.Int64).alias("dropped")))
        if long.height:
            firsts.append(_first_left(batch, offset, long, good & ~too_long))
        if candidates is not None:
            candidates.add(offset, batch, batch["_hash"], good & ~too_long)
    duplicates = candidates.confirm(runs) if candidates is not None else None
    if duplicates is not None:
        dropped += duplicates.per_query
    empty = pl.DataFrame(schema={"query_id": long.schema["query_id"], "dropped": pl.Int64})
    dropped_rows = pl.concat([empty, *dropped]).group_by("query_id").agg(pl.col("dropped").sum())
    first_rows = pl.concat([empty.rename({"dropped": "first"}), *firsts]).group_by("query_id").agg(pl.min("first"))
    return SecondPass(None if duplicates is None else duplicates.first, tally.found.get(TOO_LONG_REASON),
                      dropped_rows, first_rows)


def _too_long(batch: pl.DataFrame, long: pl.DataFrame, good: pl.Series) -> pl.Series:
    texts = batch.select("query_id", "query").join(long, on="query_id", how="left", maintain_order="left")
    return (good & (texts["query"] == texts["text"]).fill_null(False)).alias("too_long")


def _rejects(batch: pl.DataFrame, offset: int, mask: pl.Series, reason: str) -> pl.DataFrame:
    rows = row_numbers(offset, batch.height)
    return pl.DataFrame([rows, batch["query_id"], batch["doc_id"]]).filter(mask).with_columns(reason=pl.lit(reason))


def _first_left(batch: pl.DataFrame, offset: int, long: pl.DataFrame, left: pl.Series) -> pl.DataFrame:
    """The first row of each too-long query that is still to be scored (another text of the same query_id)."""
    rows = row_numbers(offset, batch.height, "first")
    frame = pl.DataFrame([batch["query_id"], rows]).filter(left & batch["query_id"].is_in(long["query_id"].implode()))
    return frame.group_by("query_id").agg(pl.min("first"))
