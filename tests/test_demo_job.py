"""The embedded demo job (README's first command), the embedding path against sentence-transformers, and README's
training-data example on its output."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from batchrank.models.demo_model import install_demo_model
from conftest import BATCHRANK, REPO, run_cli


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("demo")
    model = install_demo_model(root / "all-MiniLM-L6-v2")
    out = root / "out"
    result = run_cli("run", str(REPO / "jobs/demo.yaml"), "--set", f"model.path={model}", "--set", f"output.path={out}",
                     "--set", f"input.path={REPO / 'jobs/data/demo/candidates.parquet'}",
                     "--set", f"eval.qrels={REPO / 'jobs/data/demo/qrels.txt'}")
    assert result.exit_code == 0, result.output
    assert "Q01: boiling point of water" in result.output, "the run prints the top results of a few queries"
    # demo.yaml sets eval.qrels: the run ends with the metrics table, eval.json and the report.
    assert "first stage   reranked" in result.output and "MRR@10" in result.output
    assert "queries judged: 8 of 8" in result.output
    assert (out / "eval.json").exists() and (out / "report.html").exists()
    return model, out


def test_demo_scores_equal_sentence_transformers_cosine(demo_run) -> None:
    from sentence_transformers import SentenceTransformer

    model, out = demo_run
    scores = pl.read_parquet(str(out / "scores" / "*.parquet"))
    assert scores.height == 96 and set(scores.columns) >= {"query", "document", "first_stage_rank"}
    encoder = SentenceTransformer(str(model), device="cpu")
    queries = encoder.encode(scores["query"].to_list(), normalize_embeddings=True)
    documents = encoder.encode(scores["document"].to_list(), normalize_embeddings=True)
    expected = np.einsum("ij,ij->i", queries, documents)
    assert np.abs(scores["score"].to_numpy() - expected).max() < 1e-4


def test_demo_reranking_lifts_the_judged_passages(demo_run) -> None:
    _, out = demo_run
    scores = pl.read_parquet(str(out / "scores" / "*.parquet"))
    qrels = pl.read_csv(REPO / "jobs/data/demo/qrels.txt", separator=" ", has_header=False,
                        new_columns=["query_id", "iteration", "doc_id", "grade"])
    judged = scores.join(qrels, on=["query_id", "doc_id"])
    best = judged.group_by("query_id").agg(pl.col("rank").min(), pl.col("first_stage_rank").min())
    reranked_mrr = (1 / best["rank"]).mean()
    first_stage_mrr = (1 / best["first_stage_rank"]).mean()
    assert reranked_mrr > 0.8 > 0.3 > first_stage_mrr


def test_the_readme_training_data_example_runs_as_printed(demo_run, tmp_path: Path) -> None:
    """README's "Training data": the mine command and the datasets snippet, run from a directory laid out as the
    repo is after `bash scripts/demo.sh` (out/demo, jobs/), print what the README shows."""
    _, out = demo_run
    readme = (REPO / "README.md").read_text().split("<!-- training-data-example -->")[1]
    blocks = [block.split("\n", 1)[1] for block in readme.split("```")[1:8:2]]
    command, printed, code, shown = blocks
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "demo").symlink_to(out)
    (tmp_path / "jobs").symlink_to(REPO / "jobs")
    arguments = shlex.split(command.replace(".venv/bin/batchrank", BATCHRANK))
    mined = subprocess.run(arguments, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert mined.returncode == 0, mined.stderr
    assert mined.stderr == printed
    environment = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf-cache"), "HF_DATASETS_OFFLINE": "1"}
    loaded = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env=environment)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout == shown
