"""batchrank eval: metrics against hand-computed values, first-stage sources, qrels formats and their errors."""

from __future__ import annotations

import json
import os
from math import log2
from pathlib import Path

import polars as pl
import pytest

from batchrank.errors import InputDataError, SpecError
from batchrank.eval import evaluate
from batchrank.io.input import open_input
from batchrank.io.parquet_files import read_footer
from batchrank.planning.fingerprint import job_fingerprint
from batchrank.qrels import read_qrels
from batchrank.spec import parse_spec
from batchrank.storage import StoragePath
from conftest import make_pairs, run_cli, write_parquet
from fake_scorer import FakeScorerFactory
from output_fixtures import make_output, ranked, write_lines

# q1: the relevant c moves from first-stage rank 3 to rank 1; e is relevant but not among the candidates.
# q2: graded; x (grade 2) moves from rank 1 to 2, z (grade 1) stays at 3; y is judged non-relevant (grade 0).
# q3: no judgments at all. q9: judged, but not in the output.
ROWS = (ranked("q1", ["c", "a", "b", "d"], first_stage=["a", "b", "c", "d"])
        + ranked("q2", ["y", "x", "z"], first_stage=["x", "y", "z"])
        + ranked("q3", ["m", "n"]))
QRELS = ["q1 0 c 1", "q1 0 e 1", "q2 0 x 2", "q2 0 y 0", "q2 0 z 1", "q9 0 k 1"]


def _ndcg(gains: list[int], ideal: list[int]) -> float:
    def dcg(values: list[int]) -> float:
        return sum(g / log2(i + 2) for i, g in enumerate(values[:10]))  # trec_eval: linear gain, log2(rank+1)

    return dcg(gains) / dcg(sorted(ideal, reverse=True))


# Hand-computed, per query: (first stage, reranked).
EXPECTED = {
    "MRR@10": ((1 / 3, 1.0), (1.0, 1 / 2)),
    "nDCG@10": ((_ndcg([0, 0, 1, 0], [1, 1]), _ndcg([1, 0, 0, 0], [1, 1])),
                (_ndcg([2, 0, 1], [2, 1]), _ndcg([0, 2, 1], [2, 1]))),
    "Recall@100": ((1 / 2, 1 / 2), (1.0, 1.0)),  # q1: e is never retrieved
    "MAP": (((1 / 3) / 2, 1.0 / 2), ((1 / 1 + 2 / 3) / 2, (1 / 2 + 2 / 3) / 2)),
}


@pytest.fixture()
def output(tmp_path: Path) -> Path:
    return make_output(tmp_path / "out", ROWS)


@pytest.fixture()
def qrels(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "qrels.txt", QRELS)


def test_metrics_equal_hand_computed_values(output: Path, qrels: Path) -> None:
    result = evaluate(output, read_qrels(qrels))
    for name, ((q1_first, q1_reranked), (q2_first, q2_reranked)) in EXPECTED.items():
        assert result.first_stage[name] == pytest.approx((q1_first + q2_first) / 2, abs=1e-9), name
        assert result.reranked[name] == pytest.approx((q1_reranked + q2_reranked) / 2, abs=1e-9), name
    per_query = result.per_query.filter(pl.col("metric") == "MRR@10", pl.col("query_id") == "q1")
    assert dict(zip(per_query["stage"], per_query["value"])) == pytest.approx({"first_stage": 1 / 3, "reranked": 1.0})
    assert result.queries_judged == 2 and result.queries_in_output == 3
    assert result.queries_without_judgments == 1 and result.qrels_queries_not_in_output == 1
    assert result.first_stage_source == "output column first_stage_rank"


def test_cli_table_and_warnings(output: Path, qrels: Path) -> None:
    result = run_cli("eval", str(output), "--qrels", str(qrels))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["metric", "first", "stage", "reranked", "delta"]
    mrr = next(line for line in lines if line.startswith("MRR@10")).split()
    assert mrr == ["MRR@10", "0.6667", "0.7500", "+0.0833"]
    assert "queries judged: 2 of 3 in the output" in result.stdout
    assert "judged documents in the output: 4 of 5" in result.stdout  # q1's e was never retrieved
    assert "tied scores in the top 100: none" in result.stdout
    # Every mismatch warning names examples (repr: a trailing space would show).
    assert "1 output queries have no judgments and are not in the averages (e.g. 'q3')" in result.stderr
    assert "judges 1 queries that are not in the output; they are ignored (e.g. 'q9')" in result.stderr


def test_cli_json_is_one_object_with_the_exact_keys(output: Path, qrels: Path) -> None:
    result = run_cli("eval", str(output), "--qrels", str(qrels), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    assert set(data["reranked"]) == set(data["first_stage"]) == {"nDCG@10", "MRR@10", "Recall@100", "MAP"}
    assert data["queries_judged"] == 2 and data["queries_without_judgments"] == 1
    assert data["qrels_queries_not_in_output"] == 1
    assert data["reranked"]["MRR@10"] == pytest.approx(0.75)
    assert "warning:" in result.stderr and "warning:" not in result.stdout


def test_integer_ids_compare_as_strings(tmp_path: Path) -> None:
    out = make_output(tmp_path / "out", ranked(7, ["11", "12"], first_stage=["12", "11"]))
    out_int = make_output(tmp_path / "out-int", [{**row, "doc_id": int(row["doc_id"])} for row in
                                                 ranked(7, ["11", "12"], first_stage=["12", "11"])])
    qrels = read_qrels(write_lines(tmp_path / "q.txt", ["7 0 11 1"]))
    for directory in (out, out_int):
        result = evaluate(directory, qrels)
        assert result.reranked["MRR@10"] == 1.0 and result.first_stage["MRR@10"] == 0.5


def test_the_rank_column_decides_ties_not_the_evaluator(tmp_path: Path) -> None:
    # Tied scores: batchrank's rank keeps input order (p first). trec_eval would break the tie by doc id
    # descending, the MS MARCO script ascending (o first): the metrics follow the output's rank.
    rows = [{"query_id": "q", "doc_id": "p", "score": 0.5}, {"query_id": "q", "doc_id": "o", "score": 0.5}]
    result = evaluate(make_output(tmp_path / "out", rows), read_qrels(write_lines(tmp_path / "q", ["q 0 o 1"])))
    assert result.reranked["MRR@10"] == 0.5 and result.reranked["nDCG@10"] == pytest.approx(1 / log2(3))


def test_no_first_stage_signal_reports_reranked_only(tmp_path: Path, qrels: Path) -> None:
    rows = [{k: v for k, v in row.items() if k != "first_stage_rank"} for row in ROWS]
    out = make_output(tmp_path / "out", rows)
    result = run_cli("eval", str(out), "--qrels", str(qrels), "--json")
    data = json.loads(result.stdout)
    assert data["first_stage"] is None and data["reranked"]["MRR@10"] == pytest.approx(0.75)
    assert "no first-stage metrics" in result.stderr and "keep first_stage_rank" in result.stderr
    table = run_cli("eval", str(out), "--qrels", str(qrels)).stdout
    assert table.splitlines()[0].split() == ["metric", "reranked"]


def test_first_stage_score_from_the_unchanged_input(tmp_path: Path, qrels: Path) -> None:
    """No first-stage column in the output: the job's input has first_stage_score and has not changed."""
    rows = [{k: v for k, v in row.items() if k != "first_stage_rank"} for row in ROWS]
    source = pl.DataFrame([{"query_id": r["query_id"], "query": "q", "doc_id": r["doc_id"], "document": "d",
                            "first_stage_score": -float(row["first_stage_rank"])} for r, row in zip(rows, ROWS)])
    input_path = tmp_path / "candidates.parquet"
    source.write_parquet(input_path)
    _, footer, size = read_footer(StoragePath.of(input_path))
    out = make_output(tmp_path / "out", rows, input_path=str(input_path), input_files=[[str(input_path), size, footer]])
    result = evaluate(out, read_qrels(qrels))
    assert result.first_stage_source == f"input column first_stage_score of {input_path}"
    assert result.first_stage["MRR@10"] == pytest.approx((1 / 3 + 1) / 2)
    stat = input_path.stat()
    os.utime(input_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched, not changed: still the input
    assert evaluate(out, read_qrels(qrels)).first_stage is not None
    source.with_columns(pl.col("first_stage_score") * 2).write_parquet(input_path)  # rewritten since the run
    changed = evaluate(out, read_qrels(qrels))
    assert changed.first_stage is None and "changed since the run" in changed.first_stage_source


def test_parquet_qrels_give_the_same_metrics(output: Path, qrels: Path, tmp_path: Path) -> None:
    frame = pl.DataFrame([line.split() for line in QRELS], schema=["query_id", "it", "doc_id", "relevance"],
                         orient="row")
    path = tmp_path / "qrels.parquet"
    frame.select("query_id", "doc_id", pl.col("relevance").cast(pl.Int32)).write_parquet(path)
    assert evaluate(output, read_qrels(path)).reranked == evaluate(output, read_qrels(qrels)).reranked


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["q1 0 c 1", "q2 0 x 2", "q2 0 z"], "line 3: expected 4 fields"),
        (["q1 0 c 1", "q2 0 x high"], "line 2: grade 'high' is not an integer"),
        (["q1 0 c 1", "", "q1 0 c 2"], "line 3: query 'q1' doc 'c' is judged twice (first on line 1)"),
    ],
)
def test_malformed_qrels_exit_2_naming_file_and_line(output: Path, tmp_path: Path, lines, message) -> None:
    path = write_lines(tmp_path / "bad-qrels.txt", lines)
    result = run_cli("eval", str(output), "--qrels", str(path))
    assert result.exit_code == 2
    assert f"qrels {path} {message}" in result.stderr


def test_qrels_errors_for_parquet_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "qrels.parquet"
    pl.DataFrame({"query_id": ["q"], "doc_id": ["d"], "grade": [1]}).write_parquet(path)
    with pytest.raises(InputDataError, match=r"missing column\(s\) \['relevance'\]"):
        read_qrels(path)
    with pytest.raises(InputDataError, match="no such file"):
        read_qrels(tmp_path / "nope.txt")


def test_qrels_that_judge_none_of_the_output_queries(output: Path, tmp_path: Path) -> None:
    result = run_cli("eval", str(output), "--qrels", str(write_lines(tmp_path / "q", ["1 0 c 1"])))
    assert result.exit_code == 2 and "judges none of the output's 3 queries" in result.stderr


def test_an_unfinished_output_is_refused(output: Path, qrels: Path) -> None:
    (output / "_SUCCESS").unlink()
    result = run_cli("eval", str(output), "--qrels", str(qrels))
    assert result.exit_code == 2 and "has not finished" in result.stderr


def test_eval_spec_section_does_not_change_the_results_fingerprint(tmp_path: Path) -> None:
    source = write_parquet(make_pairs(2, 2), tmp_path / "in.parquet")
    base = {"input": {"path": str(source), "columns": {"query_id": "qid", "query": "query_text", "doc_id": "pid",
                                                        "document": "passage"}},
            "model": {"path": "m"}, "output": {"path": "out"}}
    with_eval = parse_spec({**base, "eval": {"qrels": "qrels.txt"}})
    assert with_eval.eval.qrels == "qrels.txt"
    files = open_input(with_eval.input)
    facts = FakeScorerFactory().inspect(with_eval)
    assert job_fingerprint(with_eval, files, facts) == job_fingerprint(parse_spec(dict(base)), files, facts)
    with pytest.raises(SpecError, match="eval.qrel: unknown key"):
        parse_spec({**base, "eval": {"qrel": "x"}})


def test_eval_without_qrels_takes_the_job_specs_or_says_where_to_set_them(output: Path, qrels: Path) -> None:
    # Issue 25, item 5: `eval` without --qrels pointed nowhere; it now does what `report` does.
    result = run_cli("eval", str(output))
    assert result.exit_code == 2 and result.stdout == ""
    assert "no qrels: pass --qrels QRELS, or set eval.qrels in the job spec" in result.stderr
    info = json.loads((output / "run.json").read_text())
    info["spec"]["eval"]["qrels"] = str(qrels)
    (output / "run.json").write_text(json.dumps(info))
    result = run_cli("eval", str(output), "--json")
    assert result.exit_code == 0, result.output
    assert f"qrels from the job spec: {qrels}" in result.stderr
    assert json.loads(result.stdout)["reranked"]["MRR@10"] == pytest.approx(0.75)
