"""`batchrank teacher`: each query's documents with the teacher's scores, logits by default, in the layouts a
distillation trainer reads; a run that stored saturating probabilities is refused for logits, with what to do."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl

from conftest import run_cli
from training_fixtures import DOCS, QUERIES, finished_output, qrels_file, read_any, scattered_input


def scored(out: Path) -> pl.DataFrame:
    return pl.read_parquet(str(out / "scores" / "*.parquet"))


def test_listwise_labels_are_each_querys_best_documents_with_their_logits(tmp_path: Path) -> None:
    source, rows = scattered_input(tmp_path / "in")
    out = finished_output(tmp_path / "out", source, rows, keep_texts=False, score="logit")
    result = run_cli("teacher", str(out), "-o", str(tmp_path / "labels.parquet"), "--top", "4")
    assert result.exit_code == 0, result.output
    assert f"wrote {QUERIES} rows (listwise): {4 * QUERIES} documents of {QUERIES} queries, scores: logit" \
        in result.output
    labels = pl.read_parquet(tmp_path / "labels.parquet")
    assert labels.columns == ["query", "documents", "scores"] and labels.height == QUERIES
    texts = dict(zip(rows["doc_id"], rows["document"]))
    for query_id, label in zip(scored(out)["query_id"].unique(maintain_order=True), labels.iter_rows(named=True)):
        best = scored(out).filter(pl.col("query_id") == query_id).sort("rank").head(4)
        assert label["query"] == f"query number {int(query_id[1:])}"
        assert label["documents"] == [texts[doc] for doc in best["doc_id"]]
        assert label["scores"] == best["score"].to_list()
        assert label["scores"] == sorted(label["scores"], reverse=True)


def test_pointwise_probabilities_are_the_sigmoid_of_the_stored_logits(tmp_path: Path) -> None:
    source, rows = scattered_input(tmp_path / "in")
    out = finished_output(tmp_path / "out", source, rows, keep_texts=True, score="logit")
    result = run_cli("teacher", str(out), "-o", str(tmp_path / "labels.jsonl"), "--format", "pointwise",
                     "--score", "probability")
    assert result.exit_code == 0, result.output
    assert "scores: probability (the sigmoid of the stored logit)" in result.output
    labels = read_any(tmp_path / "labels.jsonl")
    assert len(labels) == QUERIES * DOCS and set(labels[0]) == {"query", "document", "score"}
    logits = {(r["query"], r["document"]): r["score"] for r in scored(out).iter_rows(named=True)}
    for label in labels:
        assert math.isclose(label["score"], 1 / (1 + math.exp(-logits[label["query"], label["document"]])),
                            rel_tol=1e-12)


def test_flag_embedding_labels_split_positives_from_the_best_other_candidates(tmp_path: Path) -> None:
    source, rows = scattered_input(tmp_path / "in")
    out = finished_output(tmp_path / "out", source, rows, keep_texts=True, score="logit")
    qrels = qrels_file(tmp_path, rows)
    result = run_cli("teacher", str(out), "-o", str(tmp_path / "labels.jsonl"), "--format", "flag-embedding",
                     "--qrels", str(qrels), "--top", "5")
    assert result.exit_code == 0, result.output
    labels = read_any(tmp_path / "labels.jsonl")
    assert len(labels) == QUERIES - 1, "the query without a judged positive has no row"
    judged = {tuple(line.split()[::2]) for line in qrels.read_text().splitlines()}
    output = scored(out)
    for label in labels:
        rows_of_query = output.filter(pl.col("query") == label["query"]).sort("rank")
        is_positive = [(q, d) in judged for q, d in zip(rows_of_query["query_id"], rows_of_query["doc_id"])]
        positives = rows_of_query.filter(pl.Series(is_positive))
        assert label["pos"] == positives["document"].to_list() and len(label["pos"]) == 2
        assert label["pos_scores"] == positives["score"].to_list()
        others = rows_of_query.filter(~pl.Series(is_positive)).head(5)
        assert label["neg"] == others["document"].to_list() and label["neg_scores"] == others["score"].to_list()
    result = run_cli("teacher", str(out), "-o", str(tmp_path / "labels.jsonl"), "--format", "flag-embedding")
    assert result.exit_code == 2 and "--format flag-embedding splits each query's documents" in result.output


def test_logits_from_a_run_that_stored_probabilities_are_refused(tmp_path: Path) -> None:
    source, rows = scattered_input(tmp_path / "in")
    out = finished_output(tmp_path / "out", source, rows, keep_texts=True)  # run.json says no score: probability
    result = run_cli("teacher", str(out), "-o", str(tmp_path / "labels.parquet"))
    assert result.exit_code == 2
    assert "the run stored probabilities (model.score probability), which saturate at 1.0" in result.output
    assert "score the job again with model.score: logit" in result.output
    assert not (tmp_path / "labels.parquet").exists()
    assert run_cli("teacher", str(out), "-o", str(tmp_path / "labels.parquet"), "--score", "probability"
                   ).exit_code == 0
    similarity = finished_output(tmp_path / "similarity", source, rows, keep_texts=True, score="similarity")
    result = run_cli("teacher", str(similarity), "-o", str(tmp_path / "labels.parquet"), "--score", "probability")
    assert result.exit_code == 2 and "an embedding model's similarity is no probability" in result.output
