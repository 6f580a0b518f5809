"""Row checks and statistics of the whole input, streamed: the memory they take follows the number of queries, not
the number of pairs.

The first pass reads the input in record batches: the row checks (row_checks.py), text lengths, per-query facts
(query_facts.py) and a hash of every pair spilled to local disk (duplicates.py). A second pass runs only when the
first found a repeated pair hash or a query too long for the model: it reads the ids (and the query texts) again to
confirm duplicates on the real ids and to find the rows of the queries too long (second_pass.py). Rejected rows
stay on local scratch disk, in input order (reject_runs.py), until the plan writes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from batchrank.errors import InputDataError
from batchrank.io.batches import input_batches, row_numbers
from batchrank.io.input import InputFiles
from batchrank.io.rejects import DUPLICATE_REASON, TOO_LONG_REASON, summarize_counts
from batchrank.planning.duplicates import HashSpill, pair_hash, partition_count
from batchrank.planning.query_facts import QueryFactsBuilder, contiguous
from batchrank.planning.reject_runs import ROW_CHECKS_RUN, RejectRuns
from batchrank.planning.row_checks import (
    ROW_CHECKS,
    CheckTally,
    FirstRow,
    LengthHistogram,
    check_columns,
    reason_column,
)
from batchrank.planning.second_pass import SecondPass, long_queries, second_pass

TooLongCheck = Callable[[list[str]], list[int]]  # positions of the query texts whose prompt leaves no room
TOO_LONG_HINT = "; raise it, shorten the query, or set input.on_bad_rows: skip"


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
    queries: pl.DataFrame  # query_id, rows (to score): queries in order of their first scored row
    contiguous: bool  # each query's rows to score are one contiguous run of the input (nothing left out)
    rejects: RejectRuns | None  # under `skip`: the rows not scored, on local scratch disk, in input order

    @property
    def query_sizes(self) -> list[int]:
        return self.queries["rows"].to_list()

    @property
    def rejected_rows(self) -> int:
        return 0 if self.rejects is None else self.rejects.total

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        return {} if self.rejects is None else dict(self.rejects.counts)

    def summarize_rejects(self) -> str:
        """'3 document is empty, 1 duplicate (query_id, doc_id) pair', most frequent first."""
        return summarize_counts(self.rejected_by_reason)


@dataclass
class FirstPass:
    rows: int
    tally: CheckTally
    query_chars: LengthHistogram
    doc_chars: LengthHistogram
    facts: pl.DataFrame  # query_id, rows, first, last, text: over rows passing the row checks, in first-row order
    queries: int  # distinct query_id values of every row
    repeated: np.ndarray  # pair hashes seen more than once


def first_pass(files: InputFiles, scratch: Path, runs: RejectRuns, hash_bits: int) -> FirstPass:
    tally, query_chars, doc_chars = CheckTally(), LengthHistogram(), LengthHistogram()
    facts = QueryFactsBuilder(files.schema[files.spec.column("query_id")])
    hashes = HashSpill(scratch / "hashes", sum(files.num_rows))
    columns = ["query_id", "doc_id", "query", *check_columns(), pair_hash(hash_bits).alias("_hash")]
    rows = 0
    for offset, batch in input_batches(files, columns):
        bad = tally.add(offset, batch)
        query_chars.add(batch["_query_chars"])
        doc_chars.add(batch["_doc_chars"])
        facts.add(offset, batch, bad)
        hashes.add(batch["_hash"].to_numpy())
        if bad.any():
            rejected = batch.filter(bad).with_columns(
                row_numbers(offset, batch.height).filter(bad),
                reason_column().alias("reason"))
            runs.add(ROW_CHECKS_RUN, rejected)
        rows = offset + batch.height
    runs.spill.finish(ROW_CHECKS_RUN)
    merged, queries = facts.finish()
    return FirstPass(rows, tally, query_chars, doc_chars, merged, queries, hashes.repeated())


def _problem(files: InputFiles, what: str, first: FirstRow) -> str:
    path, row = files.locate(first.row)
    more = f" (and {first.count - 1} more row(s))" if first.count > 1 else ""
    return f"{path} row {row} (query_id {first.query_id!r}, doc_id {first.doc_id!r}): {what}{more}"


def _problems(files: InputFiles, first: FirstPass, second: SecondPass | None) -> list[str]:
    found = [_problem(files, what, first.tally.found[what]) for what in ROW_CHECKS if what in first.tally.found]
    if second is not None and second.duplicate is not None:  # a repeated pair names its later copy
        found.append(_problem(files, DUPLICATE_REASON, second.duplicate))
    if second is not None and second.too_long is not None:
        found.append(_problem(files, TOO_LONG_REASON, second.too_long) + TOO_LONG_HINT)
    return found


def check_rows(files: InputFiles, on_bad_rows: str, scratch: Path, too_long: TooLongCheck | None = None,
               hash_bits: int = 64) -> RowCheck:
    """Check every row of the input: nulls, blanks, repeated pairs and, with `too_long`, queries whose prompt cannot
    fit. Under `error` the caller raises on the report's problems; under `skip` the bad rows are kept as rejects
    (files under `scratch`, which must outlive the RowCheck) and left out of the query sizes."""
    runs = RejectRuns(scratch / "rejects", partition_count(sum(files.num_rows)))
    first = first_pass(files, scratch, runs, hash_bits)
    long = long_queries(first.facts, too_long)
    second = None
    if first.repeated.size or long.height:
        second = second_pass(files, scratch, runs, first.repeated, long, hash_bits)
    runs.close()
    report = InputReport(rows=first.rows, queries=first.queries, files=len(files.paths),
                         query_chars=first.query_chars.stats(), doc_chars=first.doc_chars.stats(),
                         problems=_problems(files, first, second))
    if on_bad_rows != "skip" or not runs.total:
        queries = first.facts.select("query_id", pl.col("rows").cast(pl.Int64))
        return RowCheck(report, queries, contiguous(first.facts), None)
    facts = first.facts if second is None else second.adjust(first.facts)
    queries = facts.filter(pl.col("rows") > 0).sort("first").select("query_id", pl.col("rows").cast(pl.Int64))
    return RowCheck(report, queries, False, runs)  # with rows left out, the rows to score are staged


def raise_on_problems(report: InputReport) -> None:
    if report.problems:
        others = f" ({len(report.problems) - 1} other kind(s) of problem too; run `batchrank validate`)"
        raise InputDataError(report.problems[0] + (others if len(report.problems) > 1 else ""))


def raise_if_nothing_left(check: RowCheck, path: str) -> None:
    """Under `skip`, an input whose every row is bad still stops the job."""
    if check.rejects is not None and check.rejected_rows == check.report.rows:
        raise InputDataError(
            f"input.path {path}: all {check.report.rows} rows are bad ({check.summarize_rejects()}); "
            f"nothing to score. First: {check.report.problems[0]}"
        )
