"""Row checks and statistics over the input's light index (ids and text lengths, never the texts themselves)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from batchrank.errors import InputDataError
from batchrank.io import parquet_files
from batchrank.io.input import InputFiles
from batchrank.storage import Location

# A text is blank when it holds nothing but whitespace, control characters (NUL, ESC, ...) and invisible format
# characters (zero-width space, BOM): the model would see no words. Other text is kept exactly as it is.
_VISIBLE = r"[^\s\p{Cc}\p{Cf}]"
REJECTS_COLUMNS = ("query_id", "doc_id", "reason", "file", "row")


def build_row_index(pairs: pl.LazyFrame, files: InputFiles | None = None) -> pl.DataFrame:
    """One small row per pair: global row number, ids, stripped text lengths and blank flags (null where null).

    With `files`, a file polars cannot decode (corrupt pages, text that is not UTF-8) is an InputDataError that
    names the file and column, not a crash.
    """
    try:
        return (
            pairs.select(
                pl.col("query_id"),
                pl.col("doc_id"),
                pl.col("query").str.strip_chars().str.len_chars().alias("query_chars"),
                pl.col("document").str.strip_chars().str.len_chars().alias("doc_chars"),
                pl.col("query").str.contains(_VISIBLE).not_().alias("query_blank"),
                pl.col("document").str.contains(_VISIBLE).not_().alias("doc_blank"),
            )
            .with_row_index("row")
            .collect(engine="streaming")
        )
    except (pl.exceptions.PolarsError, OSError) as error:
        if files is None:
            raise
        raise InputDataError(describe_unreadable(files, error)) from None


def describe_unreadable(files: InputFiles, error: BaseException) -> str:
    """Which input file (and column) cannot be decoded; re-reads file by file, only on this error path."""
    for path in files.paths:
        for column in files.schema.names:
            try:
                parquet_files.scan([path]).select(pl.col(column)).collect()
            except (pl.exceptions.PolarsError, OSError) as column_error:
                reason = str(column_error).splitlines()[0]
                return f"{path}: column {column!r} cannot be read ({reason}); the file is corrupt or not UTF-8 text"
    return f"input.path: the input cannot be read ({str(error).splitlines()[0]})"


@dataclass
class InputReport:
    """What `batchrank validate` prints: counts, length statistics, and the problems found."""

    rows: int
    queries: int
    files: int
    query_chars: dict[str, float]
    doc_chars: dict[str, float]
    problems: list[str] = field(default_factory=list)


def locate_row(files: InputFiles, row: int) -> tuple[Location, int]:
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


_ROW_CHECKS = (
    (pl.col("query_id").is_null(), "query_id is null"),
    (pl.col("doc_id").is_null(), "doc_id is null"),
    (pl.col("query_chars").is_null(), "query is null"),
    (pl.col("query_blank"), "query is empty"),
    (pl.col("doc_chars").is_null(), "document is null"),
    (pl.col("doc_blank"), "document is empty"),
)
DUPLICATE_REASON = "duplicate (query_id, doc_id) pair"
TOO_LONG_REASON = "the query and instruction alone do not fit model.max_model_len"


def find_problems(files: InputFiles, index: pl.DataFrame) -> list[str]:
    checks = [*_ROW_CHECKS, (pl.struct("query_id", "doc_id").is_duplicated(), DUPLICATE_REASON)]
    return [problem for mask, what in checks if (problem := _describe(files, index, mask, what))]


def reject_reasons(index: pl.DataFrame) -> pl.Series:
    """Why each row would be skipped under `input.on_bad_rows: skip` (null: the row is scored).

    The first failing check names the row. Of rows repeating a (query_id, doc_id), the first one that passes the
    other checks is scored and the later ones are rejected as duplicates.
    """
    reason = pl.lit(None, dtype=pl.String)
    for mask, what in reversed(_ROW_CHECKS):
        reason = pl.when(mask).then(pl.lit(what)).otherwise(reason)
    reasons = index.select(reason.alias("reason"))["reason"]
    candidates = index.with_columns(reasons).filter(pl.col("reason").is_null())
    repeated = candidates.filter(~pl.struct("query_id", "doc_id").is_first_distinct())["row"]
    duplicate = index["row"].is_in(repeated.implode())
    return pl.select(pl.when(duplicate).then(pl.lit(DUPLICATE_REASON)).otherwise(reasons).alias("reason"))["reason"]


def source_locations(files: InputFiles, rows: pl.Series) -> pl.DataFrame:
    """Global row numbers -> (file, row inside the file), vectorised (locate_row for many rows)."""
    ends = np.cumsum(files.num_rows)
    positions = rows.to_numpy()
    which = np.searchsorted(ends, positions, side="right")
    starts = np.concatenate([[0], ends[:-1]])
    names = np.array([str(p) for p in files.paths], dtype=object)
    return pl.DataFrame(
        {"file": pl.Series(names[which], dtype=pl.String), "row": pl.Series(positions - starts[which], dtype=pl.Int64)}
    )


def rejects_frame(index: pl.DataFrame, reasons: pl.Series, files: InputFiles) -> pl.DataFrame:
    """The rejected rows as OUTPUT/rejects.parquet holds them: query_id, doc_id, reason, file, row."""
    bad = index.select("row", "query_id", "doc_id").with_columns(reasons.alias("reason")).filter(
        pl.col("reason").is_not_null()
    )
    located = source_locations(files, bad["row"]) if bad.height else pl.DataFrame(
        schema={"file": pl.String, "row": pl.Int64}
    )
    return pl.concat([bad.select("query_id", "doc_id", "reason"), located], how="horizontal")


def summarize_reasons(reasons: pl.Series) -> str:
    """'3 document is empty, 1 duplicate (query_id, doc_id) pair', most frequent first."""
    counts = reasons.drop_nulls().alias("reason").value_counts(name="n").sort(["n", "reason"], descending=[True, False])
    return ", ".join(f"{n} {reason}" for reason, n in counts.iter_rows())


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
