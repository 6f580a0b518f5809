"""Eval, export and the report read a finished output a batch of parts at a time (results.BATCH_ROWS rows), so that
their memory follows the batch, not the output. Read in many small batches, each must give what one read of the
whole output gives: the same metrics per query, the same ranking, byte for byte, the same plot figures."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from batchrank import results
from batchrank.eval import evaluate
from batchrank.export import export, ranked_rows
from batchrank.qrels import read_qrels
from batchrank.report_html import score_histogram
from batchrank.results import open_finished
from conftest import run_cli, write_job

QUERIES, DOCS = 40, 7


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A job scored with FakeScorer: integer query ids in shuffled order (so the parts' order is not the ids'),
    first_stage_rank kept; 40 chunks of one query (7 pairs). Returns (output, qrels)."""
    import batchrank.scoring as scoring
    from fake_scorer import FakeScorerFactory

    root = tmp_path_factory.mktemp("streaming")
    ids = list(range(1000, 1000 + QUERIES))
    random.Random(3).shuffle(ids)
    rows = [{"qid": qid, "query_text": f"query {qid} water", "pid": f"d{qid}-{d}", "passage": f"passage {d} of {qid}",
             "first_stage_rank": d + 1} for qid in ids for d in range(DOCS)]
    pl.DataFrame(rows).write_parquet(root / "pairs.parquet")
    qrels = root / "qrels.txt"
    qrels.write_text("".join(f"{qid} 0 d{qid}-{(qid * 3) % DOCS} {1 + qid % 2}\n" for qid in ids[::2]))
    job = write_job(root / "job.yaml", root / "pairs.parquet", "/nonexistent/model", root / "out",
                    run={"chunk_size": DOCS, "executor": "local"}, output={"keep_columns": ["first_stage_rank"]})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scoring, "default_scorer_factory", lambda keep_engine=False: FakeScorerFactory())
        assert run_cli("run", str(job), "--preview", "0").exit_code == 0
    return root / "out", qrels


def in_batches_of(monkeypatch: pytest.MonkeyPatch, rows: int) -> None:
    monkeypatch.setattr(results, "BATCH_ROWS", rows)


def test_part_batches_cover_every_part_once_in_plan_order(finished, monkeypatch):
    out = open_finished(finished[0])
    batches = list(out.part_batches(3 * DOCS))
    assert [len(b) for b in batches] == [3] * 13 + [1]
    assert [p for batch in batches for p in batch] == out.parts


def test_eval_in_batches_equals_eval_of_the_whole(finished, monkeypatch):
    output, qrels_path = finished
    qrels = read_qrels(str(qrels_path))
    whole = evaluate(output, qrels)
    in_batches_of(monkeypatch, 2 * DOCS)
    batched = evaluate(output, qrels)
    assert batched.to_json() == whole.to_json()
    key = ["query_id", "stage", "metric"]
    assert batched.per_query.sort(key).equals(whole.per_query.sort(key))
    assert whole.queries_in_output == QUERIES and whole.queries_judged == QUERIES // 2
    assert whole.first_stage_source == "output column first_stage_rank"


def test_export_in_batches_is_sorted_by_query_id_then_rank(finished, monkeypatch):
    output = finished[0]
    everything = pl.read_parquet(output / "scores" / "*.parquet")
    in_batches_of(monkeypatch, 3 * DOCS)
    monkeypatch.setattr("batchrank.export.MERGE_WIDTH", 4)  # 14 runs: merged in two levels
    ranked = ranked_rows(output)
    assert ranked.equals(everything.sort("query_id", "rank"))
    assert ranked["query_id"].to_list()[:DOCS] == [1000] * DOCS  # numerically, not in plan order
    batched = io.BytesIO()
    assert export(output, "trec", batched, top=3) == 3 * QUERIES
    monkeypatch.setattr(results, "BATCH_ROWS", 10**9)
    whole = io.BytesIO()
    export(output, "trec", whole, top=3)
    assert batched.getvalue() == whole.getvalue()
    lines = batched.getvalue().decode().splitlines()
    assert lines[0].split()[:4] == ["1000", "Q0", lines[0].split()[2], "1"] and len(lines) == 3 * QUERIES


def test_jsonl_export_in_batches_keeps_every_row(finished, monkeypatch):
    in_batches_of(monkeypatch, 5 * DOCS)
    sink = io.BytesIO()
    assert export(finished[0], "jsonl", sink) == QUERIES * DOCS
    first = json.loads(sink.getvalue().splitlines()[0])
    assert first["query_id"] == 1000 and first["rank"] == 1 and "first_stage_rank" in first


def test_the_score_histogram_in_batches_counts_every_pair(finished, monkeypatch):
    output, qrels_path = finished
    qrels = read_qrels(str(qrels_path))
    whole = score_histogram(open_finished(output), qrels)
    in_batches_of(monkeypatch, 4 * DOCS)
    batched = score_histogram(open_finished(output), qrels)
    assert whole.median_exact and not batched.median_exact
    assert np.allclose(batched.edges, whole.edges) and (batched.counts == whole.counts).all()
    assert sorted(batched.relevant) == sorted(whole.relevant) and len(whole.relevant) == QUERIES // 2
    assert (batched.low, batched.high, batched.pairs) == (whole.low, whole.high, QUERIES * DOCS)
    assert abs(batched.median - whole.median) <= (whole.high - whole.low) / 2**16  # half a bin each side


def test_the_report_reads_its_throughput_from_the_ledger(finished, monkeypatch):
    from checkpoint_fixtures import FooterReads

    reads = FooterReads(monkeypatch)
    stats = open_finished(finished[0]).chunk_stats()
    assert len(stats) == QUERIES and reads.parts == 0
    assert [s.finished_at for s in stats] == sorted(s.finished_at for s in stats)
