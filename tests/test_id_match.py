"""Issue 25, problems 1 and 3: `batchrank eval` refuses numbers that would measure an id mismatch instead of a
ranking, and every mismatch warning names examples; the same through `eval --json`, `report` and `run`'s evaluation.
On the demo's ids (8 queries, 12 candidates each, 24 judged documents)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from conftest import run_cli
from output_fixtures import demo_job, demo_qrels_lines, demo_rows, make_output, write_lines


@pytest.fixture()
def demo_out(tmp_path: Path) -> Path:
    return make_output(tmp_path / "out", demo_rows(), queries_per_chunk=2)


def qrels_with(tmp_path: Path, doc_id: Callable[[str, str], str]) -> Path:
    """The demo qrels with each doc id rewritten by doc_id(query_id, doc_id)."""
    lines = []
    for line in demo_qrels_lines():
        query_id, zero, doc, grade = line.split()
        lines.append(f"{query_id} {zero} {doc_id(query_id, doc)} {grade}")
    return write_lines(tmp_path / "qrels.txt", lines)


# (what differs, the qrels' doc id, the qrels' spelling of D0103, whether the spellings match ignoring case etc.)
MISMATCHES = [
    ("case", lambda q, d: d.lower(), "d0103", True),
    ("zero padding", lambda q, d: f"D{int(d[1:])}", "D103", True),
    ("another collection", lambda q, d: f"msmarco-{int(d[1:]) + 7000}", "msmarco-7103", False),
]


@pytest.mark.parametrize(("what", "rewrite", "d0103", "spelled"), MISMATCHES, ids=[m[0] for m in MISMATCHES])
def test_doc_ids_that_meet_none_of_the_output_are_refused(demo_out, tmp_path, what, rewrite, d0103, spelled) -> None:
    qrels = qrels_with(tmp_path, rewrite)
    for extra in ([], ["--json"]):
        result = run_cli("eval", str(demo_out), "--qrels", str(qrels), *extra)
        assert result.exit_code == 2, result.output
        assert result.stdout == "", "not one number is printed"
        assert ("none of the 24 judged documents of the 8 judged queries are in the output, which holds 96 "
                "documents of these queries: metrics would measure an id mismatch") in result.stderr
        # Examples of both sides, for the same query: the output's best ranked ids, the qrels' most relevant.
        assert re.search(rf"query 'Q01': output doc ids 'D01\d\d', 'D01\d\d', 'D01\d\d', \.\.\.; qrels doc ids "
                         rf"'{d0103}', ", result.stderr), result.stderr
        assert ("e.g. query 'Q01': qrels " + repr(d0103) + " vs output 'D0103'" in result.stderr) is spelled
        assert "zero padding, case, whitespace, integer against text" in result.stderr


def test_integer_doc_ids_against_zero_padded_qrels(tmp_path: Path) -> None:
    rows = [{**row, "doc_id": int(row["doc_id"][1:])} for row in demo_rows()]  # 103, as an integer column
    out = make_output(tmp_path / "out", rows)
    result = run_cli("eval", str(out), "--qrels", str(qrels_with(tmp_path, lambda q, d: d[1:])))  # '0103'
    assert result.exit_code == 2, result.output
    assert "none of the 24 judged documents" in result.stderr
    assert "qrels '0103' vs output '103'" in result.stderr


def test_a_share_below_the_threshold_is_refused_too(demo_out, tmp_path) -> None:
    qrels = qrels_with(tmp_path, lambda q, d: d if d == "D0103" else d.lower())
    result = run_cli("eval", str(demo_out), "--qrels", str(qrels))
    assert result.exit_code == 2, result.output
    assert "only 1 (4.2%) of the 24 judged documents" in result.stderr
    assert "the least eval accepts is 5% of the smaller side" in result.stderr


def test_report_refuses_the_same_and_writes_nothing(demo_out, tmp_path) -> None:
    result = run_cli("report", str(demo_out), "--qrels", str(qrels_with(tmp_path, lambda q, d: d.lower())))
    assert result.exit_code == 2, result.output
    assert "none of the 24 judged documents" in result.stderr
    assert not (demo_out / "report.html").exists() and not (demo_out / "eval.json").exists()


def test_runs_evaluation_refuses_and_says_the_scores_are_complete(tmp_path: Path, fake_engine: None) -> None:
    job = demo_job(tmp_path, qrels_with(tmp_path, lambda q, d: d.lower()))
    result = run_cli("run", str(job))
    assert result.exit_code == 2, result.output
    assert "none of the 24 judged documents" in result.stderr
    out = tmp_path / "run-out"
    assert f"The scores are complete in {out}; fix the ids" in result.stderr
    assert "0.0000" not in result.stdout and not (out / "eval.json").exists()
    assert (out / "_SUCCESS").exists() and len(list((out / "scores").glob("part-*.parquet"))) == 4
    assert run_cli("status", str(out)).exit_code == 0  # complete: only the evaluation was refused
    again = run_cli("run", str(job), "--set", "eval.qrels=null", "--preview", "0")
    assert again.exit_code == 0 and "nothing to do" in again.stdout


def test_a_partial_doc_mismatch_is_warned_with_counts_and_examples(demo_out, tmp_path) -> None:
    qrels = qrels_with(tmp_path, lambda q, d: d.lower() if q == "Q03" else d)  # one query's ids spelled otherwise
    result = run_cli("eval", str(demo_out), "--qrels", str(qrels))
    assert result.exit_code == 0, result.output
    assert "judged documents in the output: 21 of 24" in result.stdout
    assert ("warning: 1 of 8 judged queries have none of their judged documents in the output, so they score 0 "
            "(the first stage missed them, or the doc ids are spelled otherwise): query 'Q03': output doc ids ") \
        in result.stderr
    assert "qrels doc ids 'd0304', 'd0310', 'd0307'" in result.stderr  # most relevant first
    assert ("warning: 3 judged documents are in the output only under another spelling (case, whitespace, leading "
            "zeros) and count as not retrieved: query 'Q03': qrels 'd0304' vs output 'D0304'") in result.stderr
    data = json.loads(run_cli("eval", str(demo_out), "--qrels", str(qrels), "--json").stdout)
    assert data["ids"] == {"judged_docs": 24, "output_docs_of_judged_queries": 96, "judged_docs_in_output": 21,
                           "queries_without_judged_docs": 1, "judged_docs_spelled_otherwise": 3}


def test_query_id_warnings_name_examples_a_trailing_space_shows(demo_out, tmp_path) -> None:
    # Problem 3: "5 qrels queries are not in the output", but not which, so 'Q07 ' could not be found.
    lines = [line.split() for line in demo_qrels_lines()]
    frame = pl.DataFrame({"query_id": [q + " " if q == "Q07" else q for q, *_ in lines],
                          "doc_id": [d for _, _, d, _ in lines], "relevance": [int(g) for *_, g in lines]})
    frame.write_parquet(tmp_path / "qrels.parquet")
    result = run_cli("eval", str(demo_out), "--qrels", str(tmp_path / "qrels.parquet"))
    assert result.exit_code == 0, result.output
    assert "queries judged: 7 of 8 in the output" in result.stdout
    assert "1 output queries have no judgments and are not in the averages (e.g. 'Q07')" in result.stderr
    assert ("judges 1 queries that are not in the output; they are ignored (e.g. 'Q07 '); 1 of them match an "
            "output query id spelled otherwise: qrels 'Q07 ' vs output 'Q07'") in result.stderr


def test_query_ids_that_meet_nowhere_are_refused_with_both_sides(demo_out, tmp_path) -> None:
    qrels = write_lines(tmp_path / "qrels.txt", [line.lower() for line in demo_qrels_lines()])
    result = run_cli("eval", str(demo_out), "--qrels", str(qrels))
    assert result.exit_code == 2 and result.stdout == ""
    assert ("judges none of the output's 8 queries (output query ids look like ['Q01', 'Q02', 'Q03'], the qrels' "
            "like ['q01', 'q02', 'q03']); 'q01' in the qrels matches output query id 'Q01' spelled otherwise") \
        in result.stderr


def test_counts_and_examples_do_not_depend_on_the_batches(tmp_path, monkeypatch) -> None:
    from batchrank import results
    from batchrank.eval import evaluate
    from batchrank.qrels import read_qrels

    rows = [row for row in demo_rows() if row["query_id"] != "Q05"]  # Q05 judged, not in the output
    out = make_output(tmp_path / "out", rows, queries_per_chunk=1)
    qrels = read_qrels(qrels_with(tmp_path, lambda q, d: d.lower() if q in ("Q03", "Q06") else d))
    whole = evaluate(out, qrels)
    monkeypatch.setattr(results, "BATCH_ROWS", 12)  # one query a batch
    batched = evaluate(out, qrels)
    assert batched.warnings() == whole.warnings() and batched.to_json() == whole.to_json()
    assert whole.ids.queries_without_judged_docs == 2 and whole.ids.qrels_queries_not_in_output == 1
    assert [example.query_id for example in whole.ids.unmet_examples] == ["Q03", "Q06"]
