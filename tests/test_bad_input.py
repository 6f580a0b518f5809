"""Bad specs and bad input stop with exit 2 and one message naming the problem, before any model loads."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import make_pairs, run_cli, write_job, write_parquet

NO_MODEL = "/nonexistent/model"  # these jobs must fail before a model is needed


@pytest.fixture(autouse=True)
def _no_model_checks(fake_engine: None) -> None:
    """The fake scorer factory checks no model directory, so each case shows the input check it is about (a real
    model's checks come before the rows are read: tests/test_robustness.py has those)."""


def job_for(tmp_path: Path, rows_or_path, **sections) -> Path:
    source = rows_or_path if isinstance(rows_or_path, Path) else write_parquet(rows_or_path, tmp_path / "in.parquet")
    return write_job(tmp_path / "job.yaml", source, NO_MODEL, tmp_path / "out", **sections)


def expect_error(job: Path, *fragments: str, extra: tuple[str, ...] = ()) -> str:
    result = run_cli("run", str(job), *extra)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, f"{fragment!r} not in {result.output!r}"
    return result.output


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    rows = [{k: v for k, v in row.items() if k != "passage"} for row in make_pairs(2, 3)]
    expect_error(job_for(tmp_path, rows), "in.parquet", "missing column 'passage'", "input.columns.document")


def test_wrong_column_type_is_named(tmp_path: Path) -> None:
    rows = make_pairs(2, 3)
    for row in rows:
        row["passage"] = [1, 2]
    expect_error(job_for(tmp_path, rows), "in.parquet", "'passage'", "expected string")


@pytest.mark.parametrize(
    "field, value, message",
    [("query_text", None, "query is null"), ("query_text", "  ", "query is empty"), ("passage", None, "document is null"), ("passage", "", "document is empty")],
)
def test_null_or_empty_text_names_the_row(tmp_path: Path, field: str, value, message: str, fake_engine: None) -> None:
    rows = make_pairs(3, 4)
    rows[6][field] = value
    expect_error(job_for(tmp_path, rows), "in.parquet row 6", "query_id 'q001'", "doc_id 'd001-002'", message)


def test_duplicate_pairs_are_refused(tmp_path: Path, fake_engine: None) -> None:
    rows = make_pairs(2, 3)
    rows.append(dict(rows[1]))
    expect_error(job_for(tmp_path, rows), "duplicate (query_id, doc_id)", "'d000-001'")


def test_missing_input_file(tmp_path: Path) -> None:
    expect_error(job_for(tmp_path, tmp_path / "absent.parquet"), "absent.parquet", "no such file")


def test_a_glob_that_matches_nothing(tmp_path: Path) -> None:
    expect_error(job_for(tmp_path, Path(str(tmp_path / "none-*.parquet"))), "the glob matches no file")


def test_a_non_parquet_file(tmp_path: Path) -> None:
    fake = tmp_path / "notes.parquet"
    fake.write_text("qid,query\n1,hello\n")
    expect_error(job_for(tmp_path, fake), "notes.parquet", "not a readable Parquet file")


def test_files_with_different_schemas_in_one_directory(tmp_path: Path) -> None:
    write_parquet(make_pairs(2, 2), tmp_path / "data" / "a.parquet")
    rows = make_pairs(2, 2, seed=5)
    for row in rows:
        row["qid"] = 7
    write_parquet(rows, tmp_path / "data" / "b.parquet")
    expect_error(job_for(tmp_path, tmp_path / "data"), "b.parquet: column 'qid' is read as Int64", "a.parquet")


def test_zero_rows(tmp_path: Path) -> None:
    schema = pa.schema([(n, pa.string()) for n in ("qid", "query_text", "pid", "passage")] + [("bm25_rank", pa.int64())])
    pq.write_table(schema.empty_table(), tmp_path / "empty.parquet")
    expect_error(job_for(tmp_path, tmp_path / "empty.parquet"), "zero rows")


def test_unknown_spec_key(tmp_path: Path) -> None:
    job = job_for(tmp_path, make_pairs(1, 2), run={"chunk_sise": 10})
    expect_error(job, "job.yaml", "run.chunk_sise: unknown key")


def test_keep_column_missing_from_input(tmp_path: Path) -> None:
    job = job_for(tmp_path, make_pairs(1, 2), output={"keep_columns": ["title"]})
    expect_error(job, "in.parquet", "'title'")


def test_validate_reports_statistics_and_problems_without_a_model(tmp_path: Path, fake_engine: None) -> None:
    rows = make_pairs(3, 4)
    job = job_for(tmp_path, rows)
    result = run_cli("validate", str(job))
    assert result.exit_code == 0, result.output
    assert "rows: 12  queries: 3" in result.output and "input OK" in result.output
    rows[2]["passage"] = ""
    job = job_for(tmp_path, rows)
    result = run_cli("validate", str(job))
    assert result.exit_code == 2
    assert "problem:" in result.output and "document is empty" in result.output


def test_bad_input_leaves_finished_output_untouched(tmp_path: Path, fake_engine: None) -> None:
    out = tmp_path / "out"
    (out / "scores").mkdir(parents=True)
    (out / "scores" / "part-000000.parquet").write_bytes(b"finished work")
    (out / "job.json").write_text("{}")
    rows = make_pairs(2, 3)
    rows[0]["passage"] = None
    job = job_for(tmp_path, rows)
    expect_error(job, "document is null", extra=("--overwrite",))
    assert (out / "scores" / "part-000000.parquet").read_bytes() == b"finished work"
    assert (out / "job.json").read_text() == "{}"
