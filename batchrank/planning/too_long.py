"""Queries too long for the model: a query is too long when the text of its first row that passes the row checks
leaves no room for any document token (the scorer factory's `too_long_queries`, run once on each distinct text, a
slice of texts at a time). Its rows with that same text are rejected; any other text of the same query_id is left
to the prepare stage's check, which stays as the safety net."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

TooLongCheck = Callable[[list[str]], list[int]]  # positions of the query texts whose prompt leaves no room
TOO_LONG_HINT = "; raise it, shorten the query, or set input.on_bad_rows: skip"
TEXTS_AT_ONCE = 10_000  # texts tokenized in one call: the token lists of every query at once could be large


def long_queries(facts: pl.DataFrame, too_long: TooLongCheck | None) -> pl.DataFrame:
    """query_id, text of the queries whose first kept row's text cannot fit (facts: query_id, text)."""
    empty = facts.select("query_id", "text").clear()
    if too_long is None or facts.is_empty():
        return empty
    texts = facts["text"].unique(maintain_order=True)
    found = []
    for start in range(0, texts.len(), TEXTS_AT_ONCE):
        piece = texts.slice(start, TEXTS_AT_ONCE)
        found += [piece[i] for i in too_long(piece.to_list())]
    if not found:
        return empty
    return facts.filter(pl.col("text").is_in(pl.Series(found, dtype=pl.String).implode())).select("query_id", "text")


def mark_too_long(batch: pl.DataFrame, long: pl.DataFrame, kept: pl.Series) -> pl.Series:
    """Of a batch's rows (query_id, query) still `kept`, those of a long query with its long text."""
    if not long.height:
        return pl.Series("too_long", [False] * batch.height)
    texts = batch.select("query_id", "query").join(long, on="query_id", how="left", maintain_order="left")
    return (kept & (texts["query"] == texts["text"]).fill_null(False)).alias("too_long")
