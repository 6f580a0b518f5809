"""Every scored row carries `input_row`, its row number in the job's input (counted from 0 over the input files in
order), so that scores join back to the input without relying on (query_id, doc_id): through a staged copy of a
scattered input, rejected rows and repeated pairs alike; a checkpoint planned before parts carried it resumes
without it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from conftest import make_pairs, run_cli, write_job, write_parquet
from fake_scorer import fake_score

NO_MODEL = "/nonexistent/model"  # the fake scorer reads none
LOCAL = {"chunk_size": 20, "executor": "local"}


def input_rows(*paths: Path) -> pl.DataFrame:
    """The input as a user reads it back: the files in order, numbered from 0."""
    return pl.concat([pl.read_parquet(path) for path in paths]).with_row_index("input_row").with_columns(
        pl.col("input_row").cast(pl.Int64))


def test_input_row_joins_scores_to_a_scattered_input_with_rejects_and_repeats(tmp_path: Path,
                                                                            fake_engine: None) -> None:
    rows = make_pairs(8, 6, seed=5)
    random.Random(1).shuffle(rows)  # queries scattered: the run scores a staged copy grouped by query
    rows[3]["passage"] = ""  # a bad row, skipped
    rows.append({**rows[10], "passage": "a repeated pair, another text"})  # the later copy is rejected
    first = write_parquet(rows[:25], tmp_path / "in" / "a.parquet")
    second = write_parquet(rows[25:], tmp_path / "in" / "b.parquet")
    job = write_job(tmp_path / "job.yaml", tmp_path / "in", NO_MODEL, tmp_path / "out", run=LOCAL,
                    input={"on_bad_rows": "skip"})
    result = run_cli("run", str(job), "--preview", "0")
    assert result.exit_code == 0, result.output
    scores = pl.read_parquet(str(tmp_path / "out" / "scores" / "*.parquet"))
    assert scores.columns == ["query_id", "doc_id", "score", "rank", "bm25_rank", "input_row"]
    assert scores.height == len(rows) - 2 and scores["input_row"].is_unique().all()
    joined = scores.join(input_rows(first, second), on="input_row")
    assert joined.height == scores.height
    assert (joined["query_id"] == joined["qid"]).all() and (joined["doc_id"] == joined["pid"]).all()
    expected = [fake_score(q, d) for q, d in zip(joined["query_text"], joined["passage"])]
    assert joined["score"].to_list() == expected, "each score is the score of the very row input_row names"
    assert 3 not in scores["input_row"] and len(rows) - 1 not in scores["input_row"], "rejected rows have none"


def test_a_checkpoint_planned_without_input_row_resumes_without_it(tmp_path: Path, fake_engine: None) -> None:
    source = write_parquet(make_pairs(6, 5, seed=2), tmp_path / "in.parquet")
    job = write_job(tmp_path / "job.yaml", source, NO_MODEL, tmp_path / "out", run=LOCAL)
    assert run_cli("run", str(job), "--preview", "0").exit_code == 0
    out = tmp_path / "out"
    # As an older batchrank left it: no input_row entry in job.json, parts without the column, the last one lost.
    manifest = json.loads((out / "job.json").read_text())
    del manifest["fingerprint"]["output.input_row"]
    (out / "job.json").write_text(json.dumps(manifest))
    parts = sorted((out / "scores").glob("part-*.parquet"))
    for part in parts:  # (the footer's chunk stats kept: the part still proves itself done)
        pq.write_table(pq.read_table(part).drop_columns(["input_row"]), part)
    parts[-1].unlink()
    (out / "_SUCCESS").unlink()
    result = run_cli("run", str(job), "--preview", "0")
    assert result.exit_code == 0, result.output
    assert "scored 30 pairs in 2 chunks (1 this run" in result.output
    assert "input_row" not in pl.read_parquet(str(out / "scores" / "*.parquet")).columns
