"""Row checks and statistics over the input's light index (ids and text lengths, never the texts themselves)."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from batchrank.errors import InputDataError
from batchrank.io import parquet_files
from batchrank.io.input import InputFiles
from batchrank.io.rejects import DUPLICATE_REASON, REJECTS_COLUMNS, summarize_reasons

# A text is blank when it holds nothing but whitespace, control characters (NUL, ESC, ...) and invisible format
# characters (zero-width space, BOM): the model would see no words. Other text is kept exactly as it is.
_VISIBLE = r"[^\s\p{Cc}\p{Cf}]"


@dataclass
class InputReport:
    """What `batchrank validate` prints: counts, length statistics, and the problems found."""

    rows: int
    queries: int
    files: int
    query_chars: dict[str, float]
    doc_chars: dict[str, float]
    problems: list[str] = field(default_factory=list)


@dataclass
class RowCheck:
    """Every row checked: the report, and what a plan needs to know about the rows it will score."""

    report: InputReport
    query_sizes: list[int]  # rows to score per query, queries in order of first appearance
    contiguous: bool  # each query's rows to score are one contiguous run of the input
    rejected: pl.DataFrame | None  # under `skip`: the rows not scored (REJECTS_COLUMNS), in input order
    rejected_input_rows: pl.Series | None = None  # their global row numbers

    @property
    def rejected_rows(self) -> int:
        return 0 if self.rejected is None else self.rejected.height


def _blank(column: str) -> pl.Expr:
    text = pl.col(column).cast(pl.String)
    return text.str.contains(_VISIBLE).not_()


def build_row_index(files: InputFiles) -> pl.DataFrame:
    """One small row per pair: global row number, ids, stripped text lengths and blank flags (null where null).

    A file polars cannot decode (corrupt pages, text that is not UTF-8) is an InputDataError that names the file
    and column, not a crash.
    """
    try:
        return (
            files.scan()
            .select(
                pl.col("query_id"),
                pl.col("doc_id"),
                pl.col("query").str.strip_chars().str.len_chars().alias("query_chars"),
                pl.col("document").str.strip_chars().str.len_chars().alias("doc_chars"),
                _blank("query_id").alias("query_id_blank"),
                _blank("doc_id").alias("doc_id_blank"),
                pl.col("query").str.contains(_VISIBLE).not_().alias("query_blank"),
                pl.col("document").str.contains(_VISIBLE).not_().alias("doc_blank"),
            )
            .with_row_index("row")
            .collect(engine="streaming")
        )
    except (pl.exceptions.PolarsError, OSError) as error:
        raise InputDataError(describe_unreadable(files, error)) from None


def describe_unreadable(files: InputFiles, error: BaseException) -> str:
    """Which input file (and column) cannot be decoded; re-reads file by file, only on this error path."""
    for path in files.paths:
        for column in files.source_columns():
            try:
                parquet_files.scan([path]).select(pl.col(column)).collect()
            except (pl.exceptions.PolarsError, OSError) as column_error:
                reason = str(column_error).splitlines()[0]
                return f"{path}: column {column!r} cannot be read ({reason}); the file is corrupt or not UTF-8 text"
    return f"input.path: the input cannot be read ({str(error).splitlines()[0]})"


_ROW_CHECKS = (
    (pl.col("query_id").is_null(), "query_id is null"),
    (pl.col("query_id_blank"), "query_id is empty"),
    (pl.col("doc_id").is_null(), "doc_id is null"),
    (pl.col("doc_id_blank"), "doc_id is empty"),
    (pl.col("query_chars").is_null(), "query is null"),
    (pl.col("query_blank"), "query is empty"),
    (pl.col("doc_chars").is_null(), "document is null"),
    (pl.col("doc_blank"), "document is empty"),
)


def _describe(files: InputFiles, index: pl.DataFrame, mask: pl.Expr, what: str) -> str | None:
    bad = index.filter(mask)
    if bad.is_empty():
        return None
    first = bad.row(0, named=True)
    path, row = files.locate(first["row"])
    more = f" (and {bad.height - 1} more row(s))" if bad.height > 1 else ""
    return f"{path} row {row} (query_id {first['query_id']!r}, doc_id {first['doc_id']!r}): {what}{more}"


def find_problems(files: InputFiles, index: pl.DataFrame) -> list[str]:
    # A repeated pair names its later copy: the first one is the pair that `skip` scores.
    checks = [*_ROW_CHECKS, (~pl.struct("query_id", "doc_id").is_first_distinct(), DUPLICATE_REASON)]
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


def _contiguous(index: pl.DataFrame) -> bool:
    runs = index.group_by("query_id").agg(
        pl.col("row").min().alias("first"), pl.col("row").max().alias("last"), pl.len().alias("n")
    )
    return bool((runs["last"] - runs["first"] + 1 == runs["n"]).all())


def check_rows(files: InputFiles, on_bad_rows: str) -> RowCheck:
    """Check every row of the input (nulls, blanks, duplicates). Under `error` the caller raises on the report's
    problems; under `skip` the bad rows are returned as rejects and left out of the query sizes."""
    index = build_row_index(files)
    report = InputReport(
        rows=index.height,
        queries=index["query_id"].n_unique(),
        files=len(files.paths),
        query_chars=_length_stats(index["query_chars"]),
        doc_chars=_length_stats(index["doc_chars"]),
        problems=find_problems(files, index),
    )
    rejected, rejected_rows = None, None
    if on_bad_rows == "skip" and report.problems:
        reasons = reject_reasons(index)
        bad = index.select("row", "query_id", "doc_id").with_columns(reasons.alias("reason"))
        bad = bad.filter(pl.col("reason").is_not_null())
        located = files.locate_many(bad["row"])
        rejected = pl.concat([bad.select("query_id", "doc_id", "reason"), located], how="horizontal")
        rejected_rows = bad["row"].cast(pl.Int64)
        index = index.filter(reasons.is_null())
    sizes = index.group_by("query_id", maintain_order=True).agg(pl.len().alias("n"))["n"].to_list()
    # With rows left out, the scored rows are staged as a grouped copy whatever their order.
    contiguous = rejected is None and _contiguous(index)
    return RowCheck(report, sizes, contiguous, None if rejected is None else rejected.select(REJECTS_COLUMNS),
                    rejected_rows)


def raise_on_problems(report: InputReport) -> None:
    if report.problems:
        others = f" ({len(report.problems) - 1} other kind(s) of problem too; run `batchrank validate`)"
        raise InputDataError(report.problems[0] + (others if len(report.problems) > 1 else ""))


def raise_if_nothing_left(check: RowCheck, path: str) -> None:
    """Under `skip`, an input whose every row is bad still stops the job."""
    if check.rejected is not None and check.rejected.height == check.report.rows:
        raise InputDataError(
            f"input.path {path}: all {check.report.rows} rows are bad ({summarize_reasons(check.rejected['reason'])}); "
            f"nothing to score. First: {check.report.problems[0]}"
        )

