"""Every row of the input checked, streamed: the memory it takes follows the number of queries, not the number of
pairs. The checks emit their decisions into one reject stream (reject_stream.py); the query sizes of the plan are
the input less that stream.

The row pass (row_pass.py) reads every row once: the row checks, text lengths, per-query facts and a hash of every
pair. A second pass (second_pass.py) runs only when the row pass found a repeated pair hash or a query too long
(too_long.py): it reads the ids (and the query texts) again to reject the too-long rows and to confirm duplicates on
the real ids. Rejected rows stay on local scratch disk, in input order, until the plan writes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import polars as pl

from batchrank.errors import InputDataError
from batchrank.io.input import InputFiles
from batchrank.io.rejects import DUPLICATE_REASON, TOO_LONG_REASON, summarize_counts
from batchrank.planning.memory import PlanMemory
from batchrank.planning.query_facts import contiguous, facts_of_rows_left
from batchrank.planning.reject_stream import RejectStream
from batchrank.planning.row_checks import ROW_CHECKS, FirstRow
from batchrank.planning.row_pass import ROW_CHECKS_RUN, RowPass, row_pass
from batchrank.planning.second_pass import SecondPass, second_pass
from batchrank.planning.too_long import TOO_LONG_HINT, TooLongCheck, long_queries


@dataclass
class InputReport:
    """What `batchrank validate` prints: counts, length statistics, and the problems found."""

    rows: int
    queries: int
    files: int
    query_chars: dict[str, float]
    doc_chars: dict[str, float]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what scores but may bite later (ids a TREC file cannot hold)


@dataclass
class RowCheck:
    """Every row checked: the report, the reject stream, and the queries the plan scores."""

    report: InputReport
    files: InputFiles
    on_bad_rows: str
    stream: RejectStream  # every check's decisions (under `error` too, where the report's problems stop the job)
    kept_facts: pl.DataFrame  # the row pass's facts: over the rows that pass the row checks
    memory: PlanMemory

    @property
    def rejects(self) -> RejectStream | None:
        """Under `skip`, when it rejects any row: the rows not scored, on local scratch disk, in input order."""
        return self.stream if self.on_bad_rows == "skip" and self.stream.total else None

    @cached_property
    def queries(self) -> pl.DataFrame:
        """query_id, rows: each query's rows in the input less the rejected ones, queries in order of their first
        row left (those left with none are not there). The row pass's facts are exactly that when only the row
        checks rejected rows; otherwise one more pass over query_id computes them (facts_of_rows_left)."""
        later = self.rejected_rows - self.stream.runs[ROW_CHECKS_RUN].rows
        if self.rejects and later:
            facts = facts_of_rows_left(self.files, self.stream.rows(), self.memory.batch_bytes)
        else:
            facts = self.kept_facts
        return facts.select("query_id", pl.col("rows").cast(pl.Int64))

    @property
    def query_sizes(self) -> list[int]:
        return self.queries["rows"].to_list()

    @property
    def contiguous(self) -> bool:
        """Each query's rows to score are one contiguous run of the input (nothing left out): no staged copy."""
        return self.rejects is None and contiguous(self.kept_facts)

    @property
    def rejected_rows(self) -> int:
        return 0 if self.rejects is None else self.rejects.total

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        return {} if self.rejects is None else dict(self.rejects.counts)

    def summarize_rejects(self) -> str:
        """'3 document is empty, 1 duplicate (query_id, doc_id) pair', most frequent first."""
        return summarize_counts(self.rejected_by_reason)


def _problem(files: InputFiles, what: str, first: FirstRow) -> str:
    path, row = files.locate(first.row)
    more = f" (and {first.count - 1} more row(s))" if first.count > 1 else ""
    return f"{path} row {row} (query_id {first.query_id!r}, doc_id {first.doc_id!r}): {what}{more}"


def _problems(files: InputFiles, first: RowPass, second: SecondPass | None) -> list[str]:
    found = [_problem(files, what, first.tally.found[what]) for what in ROW_CHECKS if what in first.tally.found]
    if second is not None and second.duplicate is not None:  # a repeated pair names its later copy
        found.append(_problem(files, DUPLICATE_REASON, second.duplicate))
    if second is not None and second.too_long is not None:
        found.append(_problem(files, TOO_LONG_REASON, second.too_long) + TOO_LONG_HINT)
    return found


def check_rows(files: InputFiles, on_bad_rows: str, scratch: Path, too_long: TooLongCheck | None = None,
               hash_bits: int = 64, memory: PlanMemory | None = None) -> RowCheck:
    """Check every row of the input: nulls, blanks, repeated pairs and, with `too_long`, queries whose prompt cannot
    fit. Under `error` the caller raises on the report's problems; under `skip` the bad rows are the rejects
    (files under `scratch`, which must outlive the RowCheck) and are left out of the query sizes. `memory`: what
    reading may take (PlanMemory's defaults when None)."""
    memory = memory or PlanMemory()
    stream = RejectStream(scratch / "rejects", memory.merge_rows)
    first = row_pass(files, scratch, stream.run(ROW_CHECKS_RUN, share=0.5), hash_bits, memory)
    long = long_queries(first.facts, too_long)
    second = None
    if first.repeated.rows or long.height:
        second = second_pass(files, scratch, stream, stream.runs[ROW_CHECKS_RUN], first.repeated, long, hash_bits,
                             memory)
    stream.close()
    report = InputReport(rows=first.rows, queries=first.queries, files=len(files.paths),
                         query_chars=first.query_chars.stats(), doc_chars=first.doc_chars.stats(),
                         problems=_problems(files, first, second), warnings=first.unsafe_ids.warnings(files.locate))
    return RowCheck(report, files, on_bad_rows, stream, first.facts, memory)


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
