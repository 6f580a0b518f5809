"""Row checks and statistics over the input's light index (ids and text lengths, never the texts themselves)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from batchrank.errors import InputDataError
from batchrank.io.input import InputFiles


def build_row_index(pairs: pl.LazyFrame) -> pl.DataFrame:
    """One small row per pair: global row number, ids, and stripped text lengths (null where the text is null)."""
    return (
        pairs.select(
            pl.col("query_id"),
            pl.col("doc_id"),
            pl.col("query").str.strip_chars().str.len_chars().alias("query_chars"),
            pl.col("document").str.strip_chars().str.len_chars().alias("doc_chars"),
        )
        .with_row_index("row")
        .collect(engine="streaming")
    )


@dataclass
class InputReport:
    """What `batchrank validate` prints: counts, length statistics, and the problems found."""

    rows: int
    queries: int
    files: int
    query_chars: dict[str, float]
    doc_chars: dict[str, float]
    problems: list[str] = field(default_factory=list)


def locate_row(files: InputFiles, row: int) -> tuple[Path, int]:
    """The file and the row number inside it (0-based) of a global row number."""
    offset = 0
    for path, count in zip(files.paths, files.num_rows, strict=True):
        if row < offset + count:
            return path, row - offset
        offset += count
    raise IndexError(row)


def _describe(files: InputFiles, index: pl.DataFrame, mask: pl.Expr, what: str) -> str | None:
    bad = index.filter(mask)
    if bad.is_empty():
        return None
    first = bad.row(0, named=True)
    path, row = locate_row(files, first["row"])
    more = f" (and {bad.height - 1} more row(s))" if bad.height > 1 else ""
    return f"{path} row {row} (query_id {first['query_id']!r}, doc_id {first['doc_id']!r}): {what}{more}"


def find_problems(files: InputFiles, index: pl.DataFrame) -> list[str]:
    checks = [
        (pl.col("query_id").is_null(), "query_id is null"),
        (pl.col("doc_id").is_null(), "doc_id is null"),
        (pl.col("query_chars").is_null(), "query is null"),
        (pl.col("query_chars") == 0, "query is empty"),
        (pl.col("doc_chars").is_null(), "document is null"),
        (pl.col("doc_chars") == 0, "document is empty"),
        (pl.struct("query_id", "doc_id").is_duplicated(), "duplicate (query_id, doc_id) pair"),
    ]
    return [problem for mask, what in checks if (problem := _describe(files, index, mask, what))]


def _length_stats(column: pl.Series) -> dict[str, float]:
    column = column.drop_nulls()
    if column.is_empty():
        return {}
    return {
        "min": int(column.min()),
        "mean": round(float(column.mean()), 1),
        "p50": int(column.quantile(0.5)),
        "p95": int(column.quantile(0.95)),
        "max": int(column.max()),
    }


def inspect_input(files: InputFiles, index: pl.DataFrame) -> InputReport:
    return InputReport(
        rows=index.height,
        queries=index["query_id"].n_unique(),
        files=len(files.paths),
        query_chars=_length_stats(index["query_chars"]),
        doc_chars=_length_stats(index["doc_chars"]),
        problems=find_problems(files, index),
    )


def raise_on_problems(report: InputReport) -> None:
    if report.problems:
        others = f" ({len(report.problems) - 1} other kind(s) of problem too; run `batchrank validate`)"
        raise InputDataError(report.problems[0] + (others if len(report.problems) > 1 else ""))
