"""The texts of a training file come from the output's kept columns or, joined by input_row, from the job's input:
the same file either way, whatever the sizes of the batches and buckets that bound the memory (down to a few rows,
so that every bucket boundary and a scattered input's regrouping are crossed); and a clear refusal when neither
source can give them."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

import batchrank.results as results
import batchrank.training.texts as texts
from conftest import run_cli
from training_fixtures import finished_output, qrels_file, read_any, scattered_input

COMMANDS = {
    "mine triplet, random": ["mine", "--format", "triplet", "--sampling", "random", "--seed", "3", "--scores"],
    "mine labeled-list, margin": ["mine", "--format", "labeled-list", "--relative-margin", "0.1",
                                  "--num-negatives", "4"],
    "mine flag-embedding": ["mine", "--format", "flag-embedding", "--scores", "--range-min", "1"],
    "teacher listwise": ["teacher", "--top", "6"],
    "teacher flag-embedding": ["teacher", "--format", "flag-embedding", "--top", "3"],
}


def produce(out: Path, qrels: Path, target: Path, command: list[str]) -> list[dict]:
    name, *options = command
    result = run_cli(name, str(out), "-o", str(target), *(["--qrels", str(qrels)] if "teacher" != name or
                                                              "flag-embedding" in options else []), *options)
    assert result.exit_code == 0, result.output
    return read_any(target)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_texts_from_the_input_equal_the_kept_texts_whatever_the_batch_sizes(
        tmp_path: Path, command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    source, rows = scattered_input(tmp_path / "in")
    kept = finished_output(tmp_path / "kept", source, rows, keep_texts=True, score="logit")
    joined = finished_output(tmp_path / "joined", source, rows, keep_texts=False, score="logit")
    qrels = qrels_file(tmp_path, rows)
    expected = produce(kept, qrels, tmp_path / "kept.parquet", COMMANDS[command])
    assert expected and all(isinstance(value, (str, list, int, float)) for value in expected[0].values())
    assert produce(joined, qrels, tmp_path / "joined.parquet", COMMANDS[command]) == expected
    for name, value in {"ROW_BUCKET": 7, "TEXT_BATCH_BYTES": 500, "QUERY_BUCKET_ROWS": 3}.items():
        monkeypatch.setattr(texts, name, value)
    monkeypatch.setattr(results, "BATCH_ROWS", 13)  # the output read a part or two at a time
    assert produce(joined, qrels, tmp_path / "small.jsonl", COMMANDS[command]) == expected


def test_the_texts_join_the_right_rows(tmp_path: Path) -> None:
    source, rows = scattered_input(tmp_path / "in")
    out = finished_output(tmp_path / "out", source, rows, keep_texts=False, score="logit")
    labels = produce(out, qrels_file(tmp_path, rows), tmp_path / "pairs.jsonl", ["teacher", "--format", "pointwise"])
    assert len(labels) == rows.height
    by_text = {(r["query"], r["document"]) for r in rows.iter_rows(named=True)}
    assert {(label["query"], label["document"]) for label in labels} == by_text


def test_a_changed_input_is_refused_and_kept_texts_need_no_input(tmp_path: Path) -> None:
    source, rows = scattered_input(tmp_path / "in")
    joined = finished_output(tmp_path / "joined", source, rows, keep_texts=False, score="logit")
    kept = finished_output(tmp_path / "kept", source, rows, keep_texts=True, score="logit")
    qrels = qrels_file(tmp_path, rows)
    rows.drop("input_row").reverse().write_parquet(source)  # the same rows in another order
    result = run_cli("mine", str(joined), "--qrels", str(qrels), "-o", str(tmp_path / "mined.parquet"))
    assert result.exit_code == 2
    assert f"the job's input {source} changed since the run" in result.output
    assert "keep query and document in output.keep_columns" in result.output
    source.unlink()
    result = run_cli("mine", str(joined), "--qrels", str(qrels), "-o", str(tmp_path / "mined.parquet"))
    assert result.exit_code == 2 and "the job's input, where the texts are joined from, cannot be read" in result.output
    assert not (tmp_path / "mined.parquet").exists()
    result = run_cli("mine", str(kept), "--qrels", str(qrels), "-o", str(tmp_path / "mined.parquet"))
    assert result.exit_code == 0, result.output


def test_an_output_with_neither_texts_nor_input_row_is_refused(tmp_path: Path) -> None:
    source, rows = scattered_input(tmp_path / "in")
    out = finished_output(tmp_path / "out", source, rows, keep_texts=False)
    for part in (out / "scores").glob("part-*.parquet"):  # as a job planned by an older batchrank wrote them
        pq.write_table(pq.read_table(part).drop_columns(["input_row"]), part)
    result = run_cli("teacher", str(out), "-o", str(tmp_path / "labels.parquet"), "--score", "probability")
    assert result.exit_code == 2
    assert "keep neither the texts (query and document in output.keep_columns) nor input_row" in result.output
