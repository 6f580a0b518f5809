"""Training files in the layouts the trainers read, from chosen rows with their texts.

The rows: whole queries, ordered by q (the query's number in output order), role (POSITIVE, then NEGATIVE) and slot
(place among its role), with the texts `query` and `document` and the teacher's `score`. The layouts:

- sentence-transformers (`mine_hard_negatives`' output_format, with output_scores as `scores`):
  triplet       query, positive, negative[, scores: [positive's, negative's]]: one row per positive and negative
  n-tuple       query, positive, negative_1 .. negative_N[, scores]: one row per positive, only with N negatives
  labeled-pair  query, document, label (1 positive, 0 negative) or score: one row per document, positives first
  labeled-list  query, documents: [positive, negatives...], labels: [1, 0, ...] or scores: one row per positive
                with at least one negative
- FlagEmbedding: flag-embedding  query, pos: [...], neg: [...][, pos_scores, neg_scores]: one row per query with a
  negative (its trainer samples from neg, so a row without any would fail there)
- listwise (teacher labels): query, documents, scores: one row per query, documents in rank order
- pointwise (teacher labels): query, document, score: one row per document
Column names are the ones above; sentence-transformers reads columns by position, and by name only label(s) and
score(s).
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from batchrank.training.mining import NEGATIVE, POSITIVE

MinedLayout = Literal["triplet", "n-tuple", "labeled-pair", "labeled-list", "flag-embedding"]
MINED_LAYOUTS: tuple[str, ...] = ("triplet", "n-tuple", "labeled-pair", "labeled-list", "flag-embedding")
# The chosen rows the builders take (an empty frame of it gives a layout's columns when nothing was chosen).
CHOSEN_SCHEMA = pl.Schema({"q": pl.Int64, "rank": pl.Int32, "score": pl.Float64, "role": pl.Int8, "slot": pl.Int64,
                           "query": pl.String, "document": pl.String})


def _sides(chosen: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(positives: q, query, positive, positive_score, slot), (negatives per query: q, negatives, negative_scores)."""
    chosen = chosen.with_columns(pl.col("query").first().over("q"))  # one text per query, its first row's
    positives = chosen.filter(pl.col("role") == POSITIVE).select(
        "q", "query", "slot", positive="document", positive_score="score")
    negatives = chosen.filter(pl.col("role") == NEGATIVE).group_by("q", maintain_order=True).agg(
        negatives=pl.col("document"), negative_scores=pl.col("score"))
    return positives, negatives


def mined_rows(chosen: pl.DataFrame, layout: MinedLayout, num_negatives: int, with_scores: bool) -> pl.DataFrame:
    """The rows of `layout` for these queries' positives and negatives (mine_hard_negatives' layouts)."""
    if layout == "labeled-pair":
        documents = chosen.with_columns(pl.col("query").first().over("q")).sort("q", "role", "slot")
        value = pl.col("score") if with_scores else (pl.col("role") == POSITIVE).cast(pl.Int64).alias("label")
        return documents.select("query", "document", value)
    positives, negatives = _sides(chosen)
    if layout == "n-tuple":
        negatives = negatives.filter(pl.col("negatives").list.len() == num_negatives)
    rows = positives.join(negatives, on="q", how="inner").sort("q", "slot")
    if layout == "triplet":
        rows = rows.explode("negatives", "negative_scores").rename({"negatives": "negative"})
        scores = [pl.concat_list("positive_score", "negative_scores").alias("scores")] if with_scores else []
        return rows.select("query", "positive", "negative", *scores)
    all_scores = pl.concat_list("positive_score", "negative_scores").alias("scores")
    if layout == "n-tuple":
        columns = [pl.col("negatives").list.get(i).alias(f"negative_{i + 1}") for i in range(num_negatives)]
        return rows.select("query", "positive", *columns, *([all_scores] if with_scores else []))
    if layout == "labeled-list":
        labels = pl.concat_list(pl.lit(1, pl.Int64), pl.col("negative_scores").list.eval(pl.lit(0, pl.Int64)))
        value = all_scores if with_scores else labels.alias("labels")
        return rows.select("query", pl.concat_list("positive", "negatives").alias("documents"), value)
    return flag_embedding_rows(chosen, with_scores)


def flag_embedding_rows(chosen: pl.DataFrame, with_scores: bool) -> pl.DataFrame:
    """FlagEmbedding's {"query", "pos", "neg"[, "pos_scores", "neg_scores"]}: one row per query with a negative."""
    positives, negatives = _sides(chosen)
    per_query = positives.sort("q", "slot").group_by("q", maintain_order=True).agg(
        pl.col("query").first(), pos=pl.col("positive"), pos_scores=pl.col("positive_score"))
    rows = per_query.join(negatives, on="q", how="inner").sort("q").rename(
        {"negatives": "neg", "negative_scores": "neg_scores"})
    return rows.select("query", "pos", "neg", *(["pos_scores", "neg_scores"] if with_scores else []))


def listwise_rows(chosen: pl.DataFrame) -> pl.DataFrame:
    """query, documents, scores: each query's documents in rank order with their scores, one row per query."""
    return chosen.sort("q", "rank").group_by("q", maintain_order=True).agg(
        pl.col("query").first(), documents=pl.col("document"), scores=pl.col("score")).drop("q")


def pointwise_rows(chosen: pl.DataFrame) -> pl.DataFrame:
    """query, document, score: one row per document, each query's in rank order."""
    return chosen.sort("q", "rank").with_columns(pl.col("query").first().over("q")).select(
        "query", "document", "score")
