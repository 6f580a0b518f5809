"""`batchrank mine` picks the negatives sentence-transformers' `mine_hard_negatives` picks, with the same options.

The reference setting: every query's candidates are the whole corpus (the demo's 8 queries x its 96 passages),
scored by the demo bi-encoder through `batchrank run` (the embedding kind scores as `SentenceTransformer.encode` +
cosine does), the output keeping no text (so the texts are joined back from the input by input_row); and
mine_hard_negatives over the same model, the qrels' positives as its dataset and the 96 passages as its corpus.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import polars as pl
import pytest

from batchrank.models.demo_model import install_demo_model
from conftest import REPO, run_cli

QRELS = REPO / "jobs/data/demo/qrels.txt"
LABELS = ("scores", "score", "label", "labels")


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo job over the whole corpus, and mine_hard_negatives' dataset, corpus and model for it."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

    root = tmp_path_factory.mktemp("mine")
    model = install_demo_model(root / "all-MiniLM-L6-v2")
    demo = pl.read_parquet(REPO / "jobs/data/demo/candidates.parquet")
    corpus = demo.select("doc_id", "document").unique(maintain_order=True)
    every_pair = demo.select("query_id", "query").unique(maintain_order=True).join(corpus, how="cross")
    every_pair.write_parquet(root / "corpus.parquet")
    out = root / "out"
    result = run_cli("run", str(REPO / "jobs/demo.yaml"), "--set", f"model.path={model}",
                     "--set", f"input.path={root / 'corpus.parquet'}", "--set", f"output.path={out}",
                     "--set", "output.keep_columns=[]", "--set", "eval.qrels=null", "--set", "run.chunk_size=200",
                     "--preview", "0")
    assert result.exit_code == 0, result.output
    # mine_hard_negatives' dataset: (query, positive) rows, queries in the output's order (its random sampling
    # draws query after query), each query's positives best first (the order batchrank lists them in).
    scores = pl.read_parquet(str(out / "scores" / "*.parquet"))
    qrels = pl.read_csv(QRELS, separator=" ", has_header=False, new_columns=["query_id", "_", "doc_id", "grade"])
    order = {query_id: i for i, query_id in enumerate(scores["query_id"].unique(maintain_order=True))}
    positives = scores.join(qrels.filter(pl.col("grade") >= 1), on=["query_id", "doc_id"]).join(
        every_pair, on=["query_id", "doc_id"]).sort(pl.col("query_id").replace_strict(order), "rank")
    assert positives.height == 24 and corpus.height == 96
    return {"out": out, "root": root, "model": SentenceTransformer(str(model), device="cpu"),
            "dataset": Dataset.from_dict({"query": positives["query"].to_list(),
                                          "positive": positives["document"].to_list()}),
            "corpus": corpus["document"].to_list()}


def reference(run: dict[str, Any], **options: Any) -> pl.DataFrame:
    from sentence_transformers.util import mine_hard_negatives

    random.seed(options.pop("seed", 0))  # mine_hard_negatives samples with Python's random module
    mined = mine_hard_negatives(run["dataset"], run["model"], corpus=run["corpus"], verbose=False,
                                cache_folder=str(run["root"] / "embeddings"), **options)
    return pl.from_arrow(mined.data.table)


CASES = {
    "defaults": ([], {}),
    "n-tuple, range and relative margin": (
        ["--format", "n-tuple", "--range-min", "2", "--range-max", "20", "--relative-margin", "0.05",
         "--num-negatives", "4", "--scores"],
        {"output_format": "n-tuple", "range_min": 2, "range_max": 20, "relative_margin": 0.05, "num_negatives": 4,
         "output_scores": True}),
    "seeded random sampling": (
        ["--sampling", "random", "--seed", "7", "--num-negatives", "5", "--range-max", "30"],
        {"sampling_strategy": "random", "seed": 7, "num_negatives": 5, "range_max": 30}),
    "labeled-list, absolute margin and score bounds": (
        ["--format", "labeled-list", "--absolute-margin", "0.02", "--max-score", "0.6", "--min-score", "0.05",
         "--scores"],
        {"output_format": "labeled-list", "absolute_margin": 0.02, "max_score": 0.6, "min_score": 0.05,
         "output_scores": True}),
    "positives included": (
        ["--format", "n-tuple", "--include-positives", "--num-negatives", "6"],
        {"output_format": "n-tuple", "include_positives": True, "num_negatives": 6}),
    "labeled-pair labels": (["--format", "labeled-pair", "--num-negatives", "2"],
                            {"output_format": "labeled-pair", "num_negatives": 2}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_mine_gives_mine_hard_negatives_negatives(corpus_run: dict[str, Any], case: str) -> None:
    arguments, options = CASES[case]
    target = corpus_run["root"] / f"{case.replace(' ', '-')}.parquet"
    result = run_cli("mine", str(corpus_run["out"]), "--qrels", str(QRELS), "-o", str(target), *arguments)
    assert result.exit_code == 0, result.output
    assert "mined 8 of the output's 8 queries: 24 positives" in result.output
    ours, theirs = pl.read_parquet(target), reference(corpus_run, **options)
    assert ours.height == theirs.height > 0
    texts = [c for c in ours.columns if c not in LABELS]
    assert ours.select(texts).rows() == theirs.select(theirs.columns[: len(texts)]).rows(), "the same texts, in order"
    for ours_column, theirs_column in zip(ours.columns[len(texts):], theirs.columns[len(texts):]):
        assert ours_column == theirs_column
        if ours_column in ("label", "labels"):
            assert ours[ours_column].to_list() == theirs[theirs_column].to_list()
        else:
            got, expected = ours[ours_column], theirs[theirs_column]
            if got.dtype == pl.List:
                got, expected = got.explode(), expected.explode()
            assert np.abs(got.to_numpy() - expected.to_numpy()).max() < 1e-4, "the model's scores, as float32 allows"


def test_flag_embedding_rows_hold_each_querys_positives_and_mined_negatives(corpus_run: dict[str, Any]) -> None:
    target = corpus_run["root"] / "flag.jsonl"
    result = run_cli("mine", str(corpus_run["out"]), "--qrels", str(QRELS), "-o", str(target),
                     "--format", "flag-embedding", "--scores", "--num-negatives", "4")
    assert result.exit_code == 0, result.output
    ours = pl.read_ndjson(target)
    assert ours.columns == ["query", "pos", "neg", "pos_scores", "neg_scores"] and ours.height == 8
    triplets = reference(corpus_run, num_negatives=4, output_scores=True)
    for row in ours.iter_rows(named=True):
        mine_rows = triplets.filter(pl.col("query") == row["query"])
        assert row["pos"] == mine_rows["positive"].unique(maintain_order=True).to_list()
        assert row["neg"] == mine_rows["negative"].unique(maintain_order=True).to_list()
        assert len(row["pos_scores"]) == len(row["pos"]) and len(row["neg_scores"]) == len(row["neg"]) == 4
        assert min(row["pos_scores"]) > max(row["neg_scores"]) - 0.2  # the hard negatives come close


def test_options_that_cannot_work_are_refused_before_anything_is_written(corpus_run: dict[str, Any]) -> None:
    out, target = str(corpus_run["out"]), corpus_run["root"] / "refused.parquet"
    cases = [
        (["--range-min", "5", "--range-max", "5"], "--range-min 5 must be smaller than --range-max 5"),
        (["--num-negatives", "8", "--range-max", "6"], "--num-negatives 8: only 6 candidates remain"),
        (["--include-positives"], "--include-positives keeps each query's ranking whole only in --format n-tuple"),
        (["--min-relevance", "3"], "no judgment has a grade of 3 or more"),
    ]
    for arguments, message in cases:
        result = run_cli("mine", out, "--qrels", str(QRELS), "-o", str(target), *arguments)
        assert result.exit_code == 2 and message in result.output, result.output
    result = run_cli("mine", out, "--qrels", str(QRELS), "-o", str(corpus_run["root"] / "mined.csv"))
    assert result.exit_code == 2 and "name a .parquet or a .jsonl file" in result.output
    other_ids = corpus_run["root"] / "other-qrels.txt"
    other_ids.write_text("X01 0 D0103 1\n")
    result = run_cli("mine", out, "--qrels", str(other_ids), "-o", str(target))
    assert result.exit_code == 2 and "none of the output's 8 queries has a positive of qrels" in result.output
    assert not target.exists(), "a refused mine writes no file"
