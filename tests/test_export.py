"""batchrank export: TREC run files that trec_eval tooling reads back to the same metrics, and JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

import ir_measures
import pytest

from batchrank.eval import MEASURES, evaluate
from batchrank.qrels import read_qrels
from conftest import run_cli
from output_fixtures import make_output, ranked, write_lines

ROWS = (ranked(10, ["c", "a", "b", "d"], first_stage=["a", "b", "c", "d"])
        + ranked(2, ["y", "x", "z"], first_stage=["x", "y", "z"])
        + ranked(3, ["m", "n"]))
QRELS = ["10 0 c 1", "10 0 e 1", "2 0 x 2", "2 0 y 0", "2 0 z 1"]


@pytest.fixture()
def output(tmp_path: Path) -> Path:
    # Two queries per part, so the export has to merge and sort across parts.
    return make_output(tmp_path / "out", ROWS, queries_per_chunk=2)


def test_trec_run_round_trips_through_ir_measures(output: Path, tmp_path: Path) -> None:
    run_file, qrels_file = tmp_path / "run.trec", write_lines(tmp_path / "qrels.txt", QRELS)
    result = run_cli("export", str(output), "--format", "trec", "--tag", "myrun", "-o", str(run_file))
    assert result.exit_code == 0, result.output
    assert "wrote 9 rows" in result.stderr
    lines = run_file.read_text().splitlines()
    # Sorted by query (numerically: the ids are integers), then rank; `qid Q0 docid rank score tag`.
    assert [line.split()[:4] for line in lines[:5]] == [
        ["2", "Q0", "y", "1"], ["2", "Q0", "x", "2"], ["2", "Q0", "z", "3"], ["3", "Q0", "m", "1"], ["3", "Q0", "n", "2"]
    ]
    assert all(line.split()[5] == "myrun" and len(line.split()) == 6 for line in lines)
    assert float(lines[0].split()[4]) == pytest.approx(1.0)
    from_file = ir_measures.calc_aggregate(
        list(MEASURES.values()), list(ir_measures.read_trec_qrels(str(qrels_file))),
        list(ir_measures.read_trec_run(str(run_file))),
    )
    ours = evaluate(output, read_qrels(qrels_file)).reranked
    assert {name: from_file[measure] for name, measure in MEASURES.items()} == pytest.approx(ours, abs=1e-12)


def test_top_k_to_stdout(output: Path) -> None:
    result = run_cli("export", str(output), "--top", "1")
    assert result.exit_code == 0, result.output
    assert [line.split()[:4] for line in result.stdout.splitlines()] == [
        ["2", "Q0", "y", "1"], ["3", "Q0", "m", "1"], ["10", "Q0", "c", "1"]
    ]
    assert result.stdout.splitlines()[0].endswith(" batchrank")


def test_jsonl_one_object_per_row(output: Path) -> None:
    result = run_cli("export", str(output), "--format", "jsonl", "--top", "2")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 6
    assert rows[0] == {"query_id": 2, "doc_id": "y", "score": pytest.approx(1.0), "rank": 1, "first_stage_rank": 2}
    assert [(r["query_id"], r["rank"]) for r in rows] == [(2, 1), (2, 2), (3, 1), (3, 2), (10, 1), (10, 2)]


def test_ids_with_whitespace_are_refused_with_their_count_and_bad_tags_too(tmp_path: Path) -> None:
    # Issue 25, problem 2: the export named only the first bad id. Now every one is counted, over every part.
    rows = (ranked("Q01", [f"D01{d:02d}" for d in range(12)]) + ranked("Q\t02", [f"D02{d:02d}" for d in range(12)])
            + ranked("Q05", ["D 0501", "D0502", "D0503\x00", "D0504"]))
    out = make_output(tmp_path / "out", rows)  # one part a query: the bad ids are in later parts
    destination = tmp_path / "run.trec"
    result = run_cli("export", str(out), "-o", str(destination))
    assert result.exit_code == 2, result.output
    assert "14 rows hold ids that a TREC run file cannot hold" in result.stderr
    assert "query_id in 12 rows (1 distinct: 'Q\\t02')" in result.stderr
    assert "doc_id in 2 rows (2 distinct: 'D 0501', 'D0503\\x00')" in result.stderr
    assert "--format jsonl" in result.stderr
    assert not destination.exists() and not list(tmp_path.glob(".run.trec*")), "no half-written file is left"
    result = run_cli("export", str(out), "--tag", "my run")
    assert result.exit_code == 2 and "--tag 'my run'" in result.stderr
