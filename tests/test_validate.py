"""planning/validate.py: the streaming row checks give the messages, statistics, query sizes and rejects that the
in-memory per-pair index gave (the expected values below are what it printed), whatever the batch size, the number
of hash partitions or the hash's width (a tiny hash: every pair collides, the real ids decide)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

import batchrank.planning.duplicates as duplicates
from batchrank.io.input import open_input
from batchrank.io.rejects import DUPLICATE_REASON, TOO_LONG_REASON
from batchrank.planning.memory import BUFFERS_PER_BATCH, PlanMemory
from batchrank.planning.validate import RowCheck, check_rows
from batchrank.spec import InputSpec
from conftest import make_pairs, write_parquet

COLUMNS = {"query_id": "qid", "query": "query_text", "doc_id": "pid", "document": "passage"}


def every_problem() -> list[dict[str, Any]]:
    rows = make_pairs(6, 8, seed=3)
    rows[1]["query_text"] = None
    rows[2]["query_text"] = " \t\n"
    rows[9]["passage"] = None
    rows[10]["passage"] = "\x00 \x1b\u200b\ufeff"
    rows[11]["pid"] = None
    rows[12]["pid"] = " "
    rows[13]["qid"] = None
    rows[14]["qid"] = "\u200b"
    rows += [dict(rows[20]), dict(rows[20]), dict(rows[11])]  # two repeats of a pair; a repeat of a null doc_id
    rows[30]["passage"] = "boiling\x00point"
    return rows


EXPECTED_PROBLEMS = [
    "in.parquet row 13 (query_id None, doc_id 'd001-005'): query_id is null",
    "in.parquet row 14 (query_id '\\u200b', doc_id 'd001-006'): query_id is empty",
    "in.parquet row 11 (query_id 'q001', doc_id None): doc_id is null (and 1 more row(s))",
    "in.parquet row 12 (query_id 'q001', doc_id ' '): doc_id is empty",
    "in.parquet row 1 (query_id 'q000', doc_id 'd000-001'): query is null",
    "in.parquet row 2 (query_id 'q000', doc_id 'd000-002'): query is empty",
    "in.parquet row 9 (query_id 'q001', doc_id 'd001-001'): document is null",
    "in.parquet row 10 (query_id 'q001', doc_id 'd001-002'): document is empty",
    "in.parquet row 48 (query_id 'q002', doc_id 'd002-004'): duplicate (query_id, doc_id) pair (and 2 more row(s))",
]
EXPECTED_REJECTS = [(1, "query is null"), (2, "query is empty"), (9, "document is null"), (10, "document is empty"),
                    (11, "doc_id is null"), (12, "doc_id is empty"), (13, "query_id is null"),
                    (14, "query_id is empty"), (48, DUPLICATE_REASON), (49, DUPLICATE_REASON), (50, "doc_id is null")]


def checked(tmp_path: Path, rows: list[dict[str, Any]], policy: str = "skip", **options: Any) -> RowCheck:
    source = write_parquet(rows, tmp_path / "in.parquet")
    files = open_input(InputSpec(path=str(source), columns=COLUMNS, on_bad_rows=policy))
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return check_rows(files, policy, scratch, **options)


def rejects_of(check: RowCheck) -> list[tuple[int, str]]:
    assert check.rejects is not None
    return [(row, reason) for row, _, _, reason in pl.concat(list(check.rejects.merged())).iter_rows()]


def expect_the_old_answers(check: RowCheck, tmp_path: Path) -> None:
    assert [p.replace(f"{tmp_path}/", "") for p in check.report.problems] == EXPECTED_PROBLEMS
    assert (check.report.rows, check.report.queries, check.report.files) == (51, 8, 1)
    assert check.report.query_chars == {"min": 0, "mean": 28.4, "p50": 28, "p95": 45, "max": 45}
    assert check.report.doc_chars == {"min": 5, "mean": 139.5, "p50": 151, "p95": 270, "max": 270}
    assert check.query_sizes == [6, 2, 8, 8, 8, 8] and not check.contiguous
    assert rejects_of(check) == EXPECTED_REJECTS
    assert check.rejected_by_reason[DUPLICATE_REASON] == 2 and check.rejected_rows == 11
    assert check.summarize_rejects().startswith("2 doc_id is null, 2 duplicate (query_id, doc_id) pair, 1 ")


def test_every_check_names_its_first_row_as_before(tmp_path: Path) -> None:
    expect_the_old_answers(checked(tmp_path, every_problem()), tmp_path)


@pytest.mark.parametrize("hash_bits", [1, 3])
def test_a_hash_that_collides_rejects_no_good_row(tmp_path: Path, hash_bits: int) -> None:
    expect_the_old_answers(checked(tmp_path, every_problem(), hash_bits=hash_bits), tmp_path)


def test_small_batches_and_many_partitions_give_the_same_answers(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(duplicates, "PARTITION_PAIRS", 4)  # 16 hash partitions, many duplicate runs
    memory = PlanMemory(read_bytes=1000 * BUFFERS_PER_BATCH)  # batches of 1,000 bytes: a few rows each
    check = checked(tmp_path, every_problem(), hash_bits=5, memory=memory)
    expect_the_old_answers(check, tmp_path)  # per-query facts merged across batches


def test_grouped_good_input_is_contiguous_with_nothing_rejected(tmp_path: Path) -> None:
    check = checked(tmp_path, make_pairs(4, 5), "error")
    assert check.report.problems == [] and check.contiguous and check.rejects is None
    assert check.query_sizes == [5, 5, 5, 5] and check.queries["query_id"].to_list() == ["q000", "q001", "q002", "q003"]
    rows = make_pairs(3, 2)
    check = checked(tmp_path, [rows[0], rows[2], rows[1], *rows[3:]], "error")
    assert check.query_sizes == [2, 2, 2] and not check.contiguous  # q000's second row after q001's first


def test_integer_ids_are_named_as_integers(tmp_path: Path) -> None:
    rows = make_pairs(2, 3)
    for i, row in enumerate(rows):
        row["qid"], row["pid"] = i // 3, 100 + i
    rows.append(dict(rows[4]))
    check = checked(tmp_path, rows, "error")
    assert check.report.problems == [f"{tmp_path}/in.parquet row 6 (query_id 1, doc_id 104): {DUPLICATE_REASON}"]


def test_queries_too_long_are_bad_rows_found_before_scoring(tmp_path: Path) -> None:
    rows = make_pairs(3, 4)
    for row in rows[4:8]:
        row["query_text"] = "long " * 50  # q001 is too long ...
    rows[7]["query_text"] = "short again"  # ... except a row of another text, left to the prepare stage, ...
    rows.append(rows.pop(7))  # ... and placed after q002's rows: q001 now comes after q002
    rows[5]["passage"] = ""  # an empty document is rejected for that, not as too long
    seen: list[list[str]] = []

    def too_long(texts: list[str]) -> list[int]:
        seen.append(texts)
        return [i for i, text in enumerate(texts) if len(text) > 100]

    check = checked(tmp_path, rows, "error", too_long=too_long)
    assert len(seen) == 1 and len(seen[0]) == 3, "each distinct first text is checked once"
    assert check.report.problems[-1] == (
        f"{tmp_path}/in.parquet row 4 (query_id 'q001', doc_id 'd001-000'): {TOO_LONG_REASON} (and 1 more row(s)); "
        "raise it, shorten the query, or set input.on_bad_rows: skip")
    check = checked(tmp_path, rows, "skip", too_long=too_long)
    assert rejects_of(check) == [(4, TOO_LONG_REASON), (5, "document is empty"), (6, TOO_LONG_REASON)]
    assert check.queries.rows() == [("q000", 4), ("q002", 4), ("q001", 1)]
