"""A finished output's ranked candidates, a batch of whole queries at a time, marked with the qrels' positives.

Each batch (results.BATCH_ROWS rows of parts; a query is whole in its part) comes with `q`, the query's number in
output order (parts in plan order, queries in order of first appearance), `is_positive` (the pair is judged
relevant) and `judged` (the query has a positive judgment). Ids are compared as strings, as eval compares them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from batchrank.errors import InputDataError
from batchrank.io import parquet_files
from batchrank.qrels import Qrels
from batchrank.results import FinishedOutput


@dataclass(frozen=True)
class Positives:
    """The judged-relevant pairs of a qrels file (grade >= min_relevance), ids as strings."""

    pairs: pl.DataFrame  # query_id, doc_id
    most_per_query: int

    @classmethod
    def of(cls, qrels: Qrels, min_relevance: int = 1) -> Positives:
        pairs = qrels.frame.filter(pl.col("relevance") >= min_relevance).select("query_id", "doc_id")
        if not pairs.height:
            raise InputDataError(f"qrels {qrels.path}: no judgment has a grade of {min_relevance} or more, so no "
                                 "query has a positive")
        return cls(pairs, int(pairs.group_by("query_id").len()["len"].max()))


def ranked_queries(out: FinishedOutput, positives: Positives | None, columns: list[str]) -> Iterator[pl.DataFrame]:
    """q, rank, score, is_positive, judged and `columns`, a batch of whole queries at a time."""
    pairs = positives.pairs.with_columns(is_positive=pl.lit(True)) if positives is not None else None
    judged = positives.pairs["query_id"].unique().implode() if positives is not None else None
    first = 0
    for batch in out.part_batches():
        frame = parquet_files.scan(batch).select("query_id", "doc_id", "score", "rank", *columns).collect()
        frame = frame.with_columns(pl.col("query_id", "doc_id").cast(pl.String))
        frame, first = _numbered(frame, first)
        if pairs is None:
            frame = frame.with_columns(is_positive=pl.lit(False), judged=pl.lit(False))
        else:
            frame = frame.join(pairs, on=["query_id", "doc_id"], how="left", maintain_order="left").with_columns(
                pl.col("is_positive").fill_null(False), judged=pl.col("query_id").is_in(judged))
        yield frame.select("q", "rank", "score", "is_positive", "judged", *columns)


def _numbered(frame: pl.DataFrame, first: int) -> tuple[pl.DataFrame, int]:
    """q: each query's number, `first` for the batch's first query; and the number after the last."""
    runs = frame["query_id"].rle_id()
    count = int(runs[-1]) + 1 if frame.height else 0
    if count == frame["query_id"].n_unique():  # each query's rows together, as parts hold them: no join needed
        return frame.with_columns(q=runs.cast(pl.Int64) + first), first + count
    order = frame.select("query_id").unique(maintain_order=True).with_row_index("q", offset=first)
    numbered = frame.join(order.with_columns(pl.col("q").cast(pl.Int64)), on="query_id", maintain_order="left")
    return numbered, first + order.height
