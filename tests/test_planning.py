"""planning/job_plan.py: rows whose query alone cannot fit max_model_len are bad rows found by the plan, before anything
is written (issue 16); under `skip` they are rejected at plan time with the other bad rows and a scattered input is
staged without them. The fake scorer counts a query longer than MAX_QUERY_CHARS as too long."""

from __future__ import annotations

import json
import random
from pathlib import Path

import polars as pl

from conftest import make_pairs, run_cli, write_job, write_parquet
from fake_scorer import MAX_QUERY_CHARS, fake_score

LONG = "x" * (MAX_QUERY_CHARS + 1)


def job(tmp_path: Path, rows: list[dict], **sections: dict) -> Path:
    source = write_parquet(rows, tmp_path / "in.parquet")
    sections["run"] = {"executor": "local", "chunk_size": 50, **sections.get("run", {})}
    return write_job(tmp_path / "job.yaml", source, "/nonexistent/model", tmp_path / "out", **sections)


def rows_with_a_long_query() -> list[dict]:
    rows = make_pairs(5, 6, seed=1)
    for row in rows[12:18]:
        row["query_text"] = LONG  # q002
    rows[3]["passage"] = ""
    random.Random(2).shuffle(rows)
    return rows


def test_a_query_too_long_stops_the_job_before_anything_is_written(tmp_path: Path, fake_engine: None) -> None:
    rows = [row for row in rows_with_a_long_query() if row["passage"]]  # only the long query is bad
    first = next(i for i, row in enumerate(rows) if row["qid"] == "q002")
    spec = job(tmp_path, rows)
    for command in ("run", "validate"):
        result = run_cli(command, str(spec))
        assert result.exit_code == 2, result.output
        assert f"in.parquet row {first} (query_id 'q002', doc_id '{rows[first]['pid']}')" in result.output
        assert "(and 5 more row(s))" in result.output
        assert "does not fit model.max_model_len" in result.output and "on_bad_rows: skip" in result.output
    out = tmp_path / "out"
    assert not (out / "job.json").exists() and not (out / "scores").exists(), "no plan, nothing scored"


def test_skip_rejects_them_at_plan_time_and_scores_the_rest(tmp_path: Path, fake_engine: None) -> None:
    rows = rows_with_a_long_query()
    spec = job(tmp_path, rows, input={"on_bad_rows": "skip"})
    check = run_cli("validate", str(spec))
    assert "a run would skip 7 of 30 rows (6 the query alone, with the prompt's fixed text, does not fit" \
        in check.output, check.output
    result = run_cli("run", str(spec), "--preview", "0")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    manifest = json.loads((out / "job.json").read_text())
    assert manifest["rejected_rows"] == 7 and manifest["total_rows"] == 23 and manifest["queries"] == 4
    rejects = pl.read_parquet(out / "rejects.parquet")
    long_rows = sorted(i for i, row in enumerate(rows) if row["qid"] == "q002")
    assert rejects.filter(pl.col("query_id") == "q002")["row"].to_list() == long_rows
    assert rejects["row"].is_sorted(), "plan rejects are in input order"
    scores = pl.read_parquet(out / "scores" / "*.parquet")
    good = [r for r in rows if r["qid"] != "q002" and r["passage"]]
    assert scores.height == 23 and dict(zip(scores["doc_id"], scores["score"])) == {
        r["pid"]: fake_score(r["query_text"], r["passage"]) for r in good}
    info = json.loads((out / "run.json").read_text())
    assert info["rejected_pairs"] == 7 and info["pairs"] == 23


def test_the_reason_names_no_instruction_for_a_kind_without_one(tmp_path: Path, minilm_cross_encoder: str) -> None:
    """A cross-encoder has no instruction: its too-long rows are rejected for the query (and the special tokens)."""
    rows = [{"query_id": "q1", "query": "short query", "doc_id": f"d{i}", "document": "a document"} for i in range(3)]
    rows += [{"query_id": "q2", "query": "water boils " * 80, "doc_id": f"d{i}", "document": "a document"}
             for i in range(2)]
    source = write_parquet(rows, tmp_path / "in.parquet")
    spec = tmp_path / "job.yaml"
    spec.write_text(json.dumps({"input": {"path": str(source), "on_bad_rows": "skip"},
                                "model": {"path": minilm_cross_encoder, "max_model_len": 64},
                                "output": {"path": str(tmp_path / "out")}}))
    check = run_cli("validate", str(spec))
    assert check.exit_code == 0, check.output
    assert "a run would skip 2 of 5 rows (2 the query alone, with the prompt's fixed text, does not fit " \
           "model.max_model_len)" in check.output
    assert "instruction" not in check.output
