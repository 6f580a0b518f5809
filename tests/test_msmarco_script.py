"""Tests for scripts/msmarco_to_parquet.py, run as a subprocess on tiny fake MS MARCO files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "msmarco_to_parquet.py"
QUOTED = '"Stop," he said "now'  # leading, inner and unbalanced quotes plus a comma
QUERIES = {"7": 'what is "rag"', "3": "define, briefly", "5": "q five", "99": "unused"}
PASSAGES = {"70": "p70", "71": QUOTED, "72": "p72", "30": "p30", "31": "", "50": "p50", "9": "x"}
# (qid, pid) in file order; queries interleaved to check grouping by first appearance.
PAIRS = [("7", "71"), ("7", "70"), ("3", "30"), ("7", "72"), ("3", "31"), ("5", "50")]
EXPECTED = [("7", "71", 1), ("7", "70", 2), ("7", "72", 3), ("3", "30", 1), ("3", "31", 2),
            ("5", "50", 1)]


def write(path: Path, rows: list[tuple[str, ...]]) -> Path:
    path.write_text("".join("\t".join(row) + "\n" for row in rows), encoding="utf-8")
    return path


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def qrels(tmp_path: Path) -> Path:
    return write(tmp_path / "qrels.dev.tsv",
                 [("7", "0", "71", "1"), ("5", "0", "50", "1"), ("1000", "0", "1", "1")])


def check_candidates(out: Path, expected: list[tuple[str, str, int]]) -> None:
    df = pl.read_parquet(out / "candidates.parquet")
    assert df.schema == pl.Schema({"query_id": pl.String, "query": pl.String,
                                   "doc_id": pl.String, "document": pl.String,
                                   "first_stage_rank": pl.Int32})
    assert df.select("query_id", "doc_id", "first_stage_rank").rows() == expected
    assert df["query"].to_list() == [QUERIES[q] for q, _, _ in expected]
    assert df["document"].to_list() == [PASSAGES[p] for _, p, _ in expected]


def test_top1000_mode(tmp_path: Path, qrels: Path) -> None:
    top = write(tmp_path / "top1000.dev.tsv", [(q, p, QUERIES[q], PASSAGES[p]) for q, p in PAIRS])
    res = run("--top1000", top, "--qrels", qrels, "--out", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    check_candidates(tmp_path / "out", EXPECTED)
    # Only the job's queries are kept, in TREC format.
    assert (tmp_path / "out" / "qrels.txt").read_text() == "7 0 71 1\n5 0 50 1\n"
    for line in ("queries: 3", "pairs: 6", "mean candidates/query: 2.0", "judged queries: 2",
                 "candidates.parquet", "qrels.txt"):
        assert line in res.stdout


def test_run_mode_with_queries_and_collection(tmp_path: Path, qrels: Path) -> None:
    # Run-file ranks are authoritative even when rows are listed out of rank order.
    ranks = {("7", "71"): "1", ("7", "70"): "2", ("7", "72"): "3", ("3", "30"): "1",
             ("3", "31"): "2", ("5", "50"): "1"}
    rows = [(q, p, ranks[q, p]) for q, p in reversed(PAIRS[:3])] + [
        (q, p, ranks[q, p]) for q, p in PAIRS[3:]]
    run_tsv = write(tmp_path / "run.bm25.tsv", rows)
    queries = write(tmp_path / "queries.dev.tsv", list(QUERIES.items()))
    collection = write(tmp_path / "collection.tsv", list(PASSAGES.items()))
    res = run("--run", run_tsv, "--queries", queries, "--collection", collection,
              "--qrels", qrels, "--out", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    # Query order follows first appearance in the run: 3, 7, 5.
    check_candidates(tmp_path / "out", EXPECTED[3:5] + EXPECTED[:3] + EXPECTED[5:])


def test_max_queries_and_depth(tmp_path: Path, qrels: Path) -> None:
    top = write(tmp_path / "top.tsv", [(q, p, QUERIES[q], PASSAGES[p]) for q, p in PAIRS])
    res = run("--top1000", top, "--qrels", qrels, "--out", tmp_path / "out",
              "--max-queries", 2, "--depth", 2)
    assert res.returncode == 0, res.stderr
    check_candidates(tmp_path / "out", EXPECTED[:2] + EXPECTED[3:5])
    assert (tmp_path / "out" / "qrels.txt").read_text() == "7 0 71 1\n"


@pytest.mark.parametrize("bad_file, expected", [
    ("run.tsv", "run.tsv:2: expected qid<TAB>pid<TAB>rank"),  # missing rank field
    ("collection.tsv", "collection.tsv:3: expected pid<TAB>passage"),  # extra tab
    ("queries.tsv", "queries.tsv: file not found"),
])
def test_bad_input_exits_2_with_file_name(tmp_path: Path, bad_file: str, expected: str) -> None:
    files = {
        "run.tsv": [("7", "70", "1"), ("7", "71") if bad_file == "run.tsv" else ("7", "71", "2")],
        "collection.tsv": [("70", "a"), ("71", "b"),
                           ("72", "c", "d") if bad_file == "collection.tsv" else ("72", "c")],
        "queries.tsv": [("7", "q")],
    }
    for name, rows in files.items():
        if not (name == bad_file == "queries.tsv"):
            write(tmp_path / name, rows)
    res = run("--run", tmp_path / "run.tsv", "--queries", tmp_path / "queries.tsv",
              "--collection", tmp_path / "collection.tsv", "--out", tmp_path / "out")
    assert res.returncode == 2
    assert expected in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
