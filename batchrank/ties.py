"""Tied scores: how many there are where the metrics look, and TREC run scores that keep batchrank's order.

batchrank ranks a query's tied scores in input order (io/parts.rank_within_queries), which is often the first
stage's order, and `batchrank eval` measures that order (the `rank` column). An evaluator reading a TREC run ignores
its rank field, re-sorts by score and breaks ties its own way: trec_eval (and ir-measures through pytrec_eval) by
doc id descending, the MS MARCO MRR script in its own order. With raw tied scores, the published number would then
measure another order than batchrank's: on the demo data with two tied pairs, MAP 0.9285 by rank against 0.9424 by
trec_eval (issue 25).

So the TREC export writes scores that strictly decrease in rank order as trec_eval reads them: trec_eval (and
pytrec_eval) keep a score as a 32-bit float, so two scores equal in 32 bits are a tie to it even when their 64-bit
values differ (rank_order_scores). A score whose 32-bit value is not below the one ranked above it is written as
the next 32-bit float below that one, one 32-bit ulp apart (6e-8 of the score); every other score is written exactly
as the output holds it. Every evaluator then reads the rank column's order, and `batchrank eval` equals trec_eval
on the exported file. eval counts the ties where the measures look (count_ties), so that a user knows how much the
input order decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

TIE_DEPTH = 100  # the deepest cutoff of eval's measures (Recall@100); MAP looks deeper, rarely by much


def _ordered_keys(values: np.ndarray) -> np.ndarray:
    """Integers in the order of 32-bit floats, one apart for neighbouring floats: the magnitude bits, negated for
    negative floats (so -0.0 and 0.0, which are equal, share key 0). One ulp down is key - 1."""
    bits = values.view(np.int32)
    magnitude = (bits & np.iinfo(np.int32).max).astype(np.int64)
    return np.where(bits < 0, -magnitude, magnitude)


def _floats(keys: np.ndarray) -> np.ndarray:
    """The 32-bit floats of _ordered_keys' keys."""
    magnitude = np.abs(keys).astype(np.int32)
    return np.where(keys < 0, magnitude | np.iinfo(np.int32).min, magnitude).astype(np.int32).view(np.float32)


def rank_order_scores(frame: pl.DataFrame) -> pl.Series:
    """The scores of `frame` (sorted by query_id, then rank), strictly decreasing within each query once rounded to
    32 bits as trec_eval reads them, in the score column's own float type: with k_i a score's 32-bit value,
    e_i = min(k_i, e_i-1 - one 32-bit ulp). A score with e_i = k_i is kept exactly; the others (ties, and scores
    a tie above pushed down) are written as e_i."""
    scores = frame["score"]
    dtype = pl.Float32 if scores.dtype == pl.Float32 else pl.Float64
    values = scores.cast(dtype).to_numpy()
    nan = np.isnan(values)
    keys = _ordered_keys(values.astype(np.float32))  # round to nearest, as C's (float) cast of trec_eval's atof
    keys[nan] = _ordered_keys(np.array([np.inf], dtype=np.float32))[0] + 1  # polars ranks NaN first
    floor = _ordered_keys(np.array([-np.inf], dtype=np.float32))[0]
    # With g_i = e_i + i (i: position in the query), the recurrence is a running minimum: g_i = min(k_i + i, g_i-1).
    written = (
        pl.DataFrame({"query_id": frame["query_id"], "key": keys})
        .with_columns(position=pl.int_range(pl.len()).over("query_id"))
        .select(((pl.col("key") + pl.col("position")).cum_min().over("query_id") - pl.col("position"))
                .clip(lower_bound=floor))["key"]
        .to_numpy()
    )
    pushed = (written < keys) & ~nan
    result = values.copy()
    result[pushed] = _floats(written[pushed]).astype(values.dtype)  # exact: a 32-bit float is a 64-bit one too
    return pl.Series("score", result, dtype=dtype)


@dataclass
class TieCount:
    """Tied scores among the judged queries' top TIE_DEPTH ranks."""

    pairs: int = 0  # pairs in a group of equal scores that reaches into the top TIE_DEPTH of its query
    groups: int = 0  # such groups
    mixing_grades: int = 0  # groups holding documents of different relevance: their order changes a metric
    queries: int = 0  # judged queries with such a group

    def to_json(self) -> dict[str, Any]:
        return {"depth": TIE_DEPTH, "pairs": self.pairs, "groups": self.groups, "mixing_grades": self.mixing_grades,
                "queries": self.queries}

    def describe(self) -> str:
        """One line for the metrics table."""
        if not self.groups:
            return f"tied scores in the top {TIE_DEPTH}: none"
        return (f"tied scores in the top {TIE_DEPTH}: {self.pairs} pairs in {self.groups} groups of {self.queries} "
                f"queries, {self.mixing_grades} groups mixing relevance grades; ranked in input order (the rank "
                "column), which the TREC export keeps")


def count_ties(rows: pl.DataFrame, grades: pl.DataFrame, into: TieCount) -> None:
    """Add the ties of `rows` (query_id, doc_id, score, rank of whole judged queries) to `into`; `grades` holds
    the qrels (query_id, doc_id, relevance), an unjudged document being grade 0."""
    # Scores decrease with rank, so a group reaching into the top TIE_DEPTH holds rows at rank <= TIE_DEPTH, or
    # rows below it whose score equals the score at rank TIE_DEPTH.
    boundary = pl.col("score").filter(pl.col("rank") == TIE_DEPTH).first().over("query_id")
    near_top = rows.filter((pl.col("rank") <= TIE_DEPTH) | (pl.col("score") == boundary).fill_null(False))
    groups = (
        near_top.join(grades, on=["query_id", "doc_id"], how="left")
        .group_by("query_id", "score")
        .agg(pairs=pl.len(), grades=pl.col("relevance").fill_null(0).n_unique())
        .filter(pl.col("pairs") > 1)
    )
    into.pairs += int(groups["pairs"].sum())
    into.groups += groups.height
    into.mixing_grades += int((groups["grades"] > 1).sum())
    into.queries += groups["query_id"].n_unique()
