"""Issue 25, problem 2: ids a TREC run or qrels file cannot hold (whitespace, control characters) are found where
they enter: `validate` and `run` warn with a count and examples before scoring, the preview prints them escaped,
`export --format trec` counts them, and TREC-text qrels say why a line has too many fields."""

from __future__ import annotations

import re

import polars as pl
import pytest
import yaml

from batchrank.io.trec_ids import UnsafeIdTally, printable, shown_id, unsafe_mask
from conftest import REPO, run_cli
from output_fixtures import write_lines


@pytest.fixture()
def unsafe_input(tmp_path):
    """The demo input with Q02 spelled 'Q\\t02' (12 rows), Q03's doc ids with a space ('D 0301', ...) and Q01's
    documents holding newlines."""
    frame = pl.read_parquet(REPO / "jobs/data/demo/candidates.parquet").with_columns(
        query_id=pl.when(pl.col("query_id") == "Q02").then(pl.lit("Q\t02")).otherwise("query_id"),
        doc_id=pl.when(pl.col("query_id") == "Q03").then(pl.col("doc_id").str.replace("D", "D ")).otherwise("doc_id"),
        document=pl.when(pl.col("query_id") == "Q01").then(pl.col("document").str.replace(" ", "\n", literal=True))
        .otherwise("document"),
    )
    path = tmp_path / "candidates.parquet"
    frame.write_parquet(path)
    spec = {"input": {"path": str(path)}, "model": {"path": str(tmp_path / "model")}, "run": {"chunk_size": 24},
            "output": {"path": str(tmp_path / "out"), "keep_columns": ["query", "document", "first_stage_rank"]}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "job.yaml", path


def expected_warning(path) -> str:
    return (f"ids with whitespace or control characters, which a TREC run or qrels file cannot hold: query_id in 12 "
            f"rows (1 distinct: 'Q\\t02' at {path} row 12); doc_id in 12 rows (12 distinct: 'D 0302' at {path} "
            f"row 24, 'D 0311' at {path} row 25, 'D 0312' at {path} row 26). They are scored as they are, but "
            "`batchrank export --format trec` refuses them")


def test_validate_warns_with_count_and_examples(unsafe_input, fake_engine) -> None:
    job, path = unsafe_input
    result = run_cli("validate", str(job))
    assert result.exit_code == 0, result.output
    assert "input OK" in result.stdout
    assert f"warning: {expected_warning(path)}" in result.stderr


def test_run_warns_before_scoring_previews_escaped_and_export_counts(unsafe_input, fake_engine, tmp_path) -> None:
    job, path = unsafe_input
    result = run_cli("run", str(job), "--preview", "3")
    assert result.exit_code == 0, result.output
    warning = result.stderr.index(expected_warning(path))
    assert warning < result.stderr.index("done: 1 of 4 chunks"), "the warning comes before any scoring"
    # The preview: no raw tab or newline, one line per row; the unsafe ids quoted and escaped.
    assert "\t" not in result.stdout
    preview = result.stdout.split("report: ")[1].splitlines()[1:]
    headers = [line for line in preview if line and not line.startswith("  ")]
    assert [line.split(":")[0] for line in headers] == ["Q01", "'Q\\t02'", "Q03"]
    rows = [line for line in preview if line.startswith("  ")]
    assert len(rows) == 9 and all(re.match(r"  +\d  \d\.\d{4}  ", line) for line in rows)
    assert all(re.search(r"  'D 03\d\d'  ", line) for line in rows[6:])
    assert any("\\n" in line for line in rows[:3]), "Q01's newlines are shown escaped"
    export = run_cli("export", str(tmp_path / "out"), "-o", str(tmp_path / "run.trec"))
    assert export.exit_code == 2
    assert ("24 rows hold ids that a TREC run file cannot hold (empty, or with whitespace or control characters: "
            "trec_eval splits its lines on whitespace): query_id in 12 rows (1 distinct: 'Q\\t02'); doc_id in 12 "
            "rows (12 distinct: ") in export.stderr
    assert run_cli("export", str(tmp_path / "out"), "--format", "jsonl").exit_code == 0


def test_trec_qrels_with_an_id_holding_whitespace_say_so(tmp_path) -> None:
    from output_fixtures import demo_rows, make_output

    out = make_output(tmp_path / "out", demo_rows())
    qrels = write_lines(tmp_path / "qrels.txt", ["Q01 0 D0103 2", "Q05 0 D 0501 1"])
    result = run_cli("eval", str(out), "--qrels", str(qrels))
    assert result.exit_code == 2
    assert (f"qrels {qrels} line 2: expected 4 fields 'query_id 0 doc_id grade', got 5: 'Q05 0 D 0501 1'; an id "
            "with whitespace cannot be written in TREC text: use Parquet qrels") in result.stderr


def test_the_tally_is_the_same_whatever_the_batches() -> None:
    ids = pl.Series("doc_id", ["a", "b c", "d\te", "b c", "", "f\x00", "g", "h\u00a0i", "j", "k l"])
    mask = unsafe_mask(ids)
    assert mask.to_list() == [False, True, True, True, True, True, False, True, False, True]
    whole = UnsafeIdTally()
    whole.add(100, pl.DataFrame({"doc_id": ids}))
    for size in (1, 3, 4):
        pieces = UnsafeIdTally()
        for start in range(0, ids.len(), size):
            pieces.add(100 + start, pl.DataFrame({"doc_id": ids[start:start + size]}))
        assert pieces.found == whole.found
    entry = whole.found["doc_id"]
    assert (entry.rows, len(entry.distinct)) == (7, 6)
    assert entry.examples == [(101, "b c"), (102, "d\te"), (104, "")]
    assert not unsafe_mask(pl.Series([1, 2], dtype=pl.Int64)).any()  # integer ids print as digits
    keep = pl.Series([True] * 4 + [False] * 6)  # rows the row checks reject are theirs to report
    some = UnsafeIdTally()
    some.add(0, pl.DataFrame({"doc_id": ids}), keep)
    assert some.found["doc_id"].rows == 3


def test_printable_forms() -> None:
    assert shown_id("D0103") == "D0103" and shown_id("D 0103") == "'D 0103'" and shown_id(42) == "42"
    assert shown_id("Q\t02") == "'Q\\t02'"
    assert printable("line\none\ttab\x1b[31m") == "line\\none\\ttab\\x1b[31m"
    assert printable("café — ok") == "café — ok"
