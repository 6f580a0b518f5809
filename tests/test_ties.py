"""Issue 25, problem 4: tied scores are counted where the measures look, and the exported TREC run measures what
`batchrank eval` measures (the rank column's order), checked against ir-measures on the exported file."""

from __future__ import annotations

import json
from pathlib import Path

import ir_measures
import numpy as np
import polars as pl
import pytest

from batchrank.eval import MEASURES
from batchrank.ties import rank_order_scores
from conftest import run_cli
from output_fixtures import demo_qrels_lines, demo_rows, make_output, write_lines

# Two pairs of exactly tied scores, each a judged-irrelevant document ranked above a relevant one by input order
# (batchrank's tie break), where trec_eval's tie break (doc id, descending) would put the relevant one first.
TIES = {("Q01", "D0106"): ("Q01", "D0110"), ("Q02", "D0208"): ("Q02", "D0211")}


def tied_rows() -> list[dict]:
    rows = demo_rows()
    scores = {(row["query_id"], row["doc_id"]): row["score"] for row in rows}
    for row in rows:
        if (row["query_id"], row["doc_id"]) in TIES:
            row["score"] = scores[TIES[row["query_id"], row["doc_id"]]]
    return rows


def ir_measures_on(run: list, qrels: Path) -> dict[str, float]:
    values = ir_measures.calc_aggregate(list(MEASURES.values()), list(ir_measures.read_trec_qrels(str(qrels))), run)
    return {name: values[measure] for name, measure in MEASURES.items()}


def test_eval_equals_ir_measures_on_the_exported_run_with_ties(tmp_path: Path) -> None:
    out = make_output(tmp_path / "out", tied_rows(), queries_per_chunk=3)
    qrels = write_lines(tmp_path / "qrels.txt", demo_qrels_lines())
    table = run_cli("eval", str(out), "--qrels", str(qrels))
    assert table.exit_code == 0, table.output
    assert ("tied scores in the top 100: 4 pairs in 2 groups of 2 queries, 2 groups mixing relevance grades; ranked "
            "in input order (the rank column), which the TREC export keeps") in table.stdout
    result = run_cli("eval", str(out), "--qrels", str(qrels), "--json")
    ours = json.loads(result.stdout)
    assert ours["ties"] == {"depth": 100, "pairs": 4, "groups": 2, "mixing_grades": 2, "queries": 2}

    run_file = tmp_path / "run.trec"
    assert run_cli("export", str(out), "--format", "trec", "-o", str(run_file)).exit_code == 0
    from_file = ir_measures_on(list(ir_measures.read_trec_run(str(run_file))), qrels)
    assert from_file == pytest.approx(ours["reranked"], abs=1e-12)

    # The ties matter: on the raw scores, trec_eval's tie break measures another ranking (issue 25's complaint).
    scores = pl.read_parquet(out / "scores" / "*.parquet")
    raw = ir_measures_on([ir_measures.ScoredDoc(q, d, s) for q, d, s in scores.select("query_id", "doc_id", "score")
                          .iter_rows()], qrels)
    # (MRR@10 comes from the MS MARCO script, whose tie break happens to agree with the input order here.)
    assert raw["MAP"] > ours["reranked"]["MAP"] + 0.01 and raw["nDCG@10"] > ours["reranked"]["nDCG@10"] + 0.01

    # The file's scores are the output's, but for the lower-ranked pair of each tie, written one 32-bit ulp below
    # (trec_eval reads scores as 32-bit floats).
    lines = [line.split() for line in run_file.read_text().splitlines()]
    written = {(q, d): float(score) for q, _, d, _, score, _ in lines}
    for (query_id, doc_id), score in zip(scores.select("query_id", "doc_id").iter_rows(), scores["score"]):
        if (query_id, doc_id) in TIES.values():
            assert written[query_id, doc_id] == ulps_below(np.float32(score), 1)
        else:
            assert written[query_id, doc_id] == score


def test_no_ties_no_change(tmp_path: Path) -> None:
    out = make_output(tmp_path / "out", demo_rows())
    qrels = write_lines(tmp_path / "qrels.txt", demo_qrels_lines())
    assert "tied scores in the top 100: none" in run_cli("eval", str(out), "--qrels", str(qrels)).stdout
    exported = run_cli("export", str(out)).stdout.splitlines()
    scores = pl.read_parquet(out / "scores" / "*.parquet").sort("query_id", "rank")
    assert [float(line.split()[4]) for line in exported] == scores["score"].to_list()


def ulps_below(value: float, count: int) -> np.float32:
    """The 32-bit float `count` steps below `value`'s 32-bit float."""
    value = np.float32(value)
    for _ in range(count):
        value = np.nextafter(value, np.float32(-np.inf))
    return value


def test_rank_order_scores_strictly_decrease_and_move_only_ties() -> None:
    frame = pl.DataFrame({
        "query_id": ["a"] * 6 + ["b"] * 4,
        # a: a run of three ties, then -0.0 and 0.0 (equal floats); b: a tie, then a score equal to 1.0 in 32 bits
        # (a tie to trec_eval, not to batchrank's rank), then one far below
        "score": [0.9, 0.5, 0.5, 0.5, 0.0, -0.0, 1.0, 1.0, np.nextafter(1.0, 0.0), -3.0],
    })
    for dtype in (pl.Float64, pl.Float32):
        typed = frame.with_columns(pl.col("score").cast(dtype))
        written = rank_order_scores(typed)
        assert written.dtype == dtype
        for query in ("a", "b"):
            values = written.filter(typed["query_id"] == query).to_numpy().astype(np.float32)  # as trec_eval reads
            assert (np.diff(values) < 0).all(), (dtype, query, values)
        values = written.to_numpy()
        source = typed["score"].to_numpy()
        assert values[0] == source[0] and values[1] == source[1] and values[6] == source[6]
        assert values[2] == ulps_below(source[1], 1) and values[3] == ulps_below(source[1], 2)
        assert values[4] == 0.0 and values[5] == ulps_below(0.0, 1)
        assert values[7] == ulps_below(source[6], 1) and values[8] == ulps_below(source[6], 2)  # pushed by the tie
        assert values[9] == source[9]
