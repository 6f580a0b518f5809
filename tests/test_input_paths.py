"""Which files an input path picks, as a user meets it with a Spark- or Hive-written dataset: `_SUCCESS`, `.crc` and
`_temporary/` left out of globs and directories alike, `date=*` directory globs, and partition values
(`date=2026-12-01/`) kept with `output.keep_columns` (io/input.py, io/partitions.py, storage/globbing.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from conftest import make_pairs, run_cli, write_job, write_parquet

NO_MODEL = "/nonexistent/model"  # FakeScorer needs none
LOCAL = {"chunk_size": 50, "executor": "local"}
DATES = ("2026-12-01", "2026-12-02", "2026-12-03")


def spark_dataset(root: Path, rows: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """The rows split into date=... partitions, with what Spark leaves beside them; each pair's date."""
    dates = {}
    for number, date in enumerate(DATES):
        part = rows[number * len(rows) // 3:(number + 1) * len(rows) // 3]
        write_parquet(part, root / f"date={date}" / "part-00000-c000.snappy.parquet")
        (root / f"date={date}" / "_SUCCESS").write_bytes(b"")
        (root / f"date={date}" / ".part-00000-c000.snappy.parquet.crc").write_bytes(b"crc")
        dates |= {(row["qid"], row["pid"]): date for row in part}
    (root / "_SUCCESS").write_bytes(b"")
    (root / "_temporary" / "0").mkdir(parents=True)
    (root / "_temporary" / "0" / "part-00001.parquet").write_bytes(b"half a file a failed task left")
    return dates


def scores(out: Path) -> pl.DataFrame:
    return pl.read_parquet(str(out / "scores" / "*.parquet")).sort("query_id", "doc_id")


@pytest.mark.parametrize("pattern", ["data", "data/**", "data/*", "data/date=*", "data/date=*/", "data/**/*.parquet",
                                     "data/date=2026-12-0[1-3]/*.parquet"])
def test_every_way_to_name_a_spark_dataset_reads_its_data_and_its_partitions(tmp_path: Path, fake_engine: None,
                                                                             pattern: str) -> None:
    rows = make_pairs(12, 10, seed=3)  # 120 pairs, whole queries per partition
    dates = spark_dataset(tmp_path / "data", rows)
    job = write_job(tmp_path / "job.yaml", f"{tmp_path}/{pattern}", NO_MODEL, tmp_path / "out", run=LOCAL,
                    output={"keep_columns": ["bm25_rank", "date"]})
    result = run_cli("run", str(job), "--preview", "0")
    assert result.exit_code == 0, result.output
    assert "too small for a Parquet file" not in result.output
    got = scores(tmp_path / "out")
    assert got.height == 120 and got.columns == ["query_id", "doc_id", "score", "rank", "bm25_rank", "date",
                                                 "input_row"]
    assert {(row["query_id"], row["doc_id"]): row["date"] for row in got.iter_rows(named=True)} == dates


def test_partition_values_of_a_scattered_input_go_through_its_staged_copy(tmp_path: Path, fake_engine: None) -> None:
    """Queries spread over the partitions: the plan stages a copy grouped by query (a scan, not a row-range read),
    and each row keeps its own file's date; with the spec's `--set` the column may be dropped again."""
    rows = make_pairs(10, 9, seed=5)
    rows = rows[1::2] + rows[::2]
    dates = spark_dataset(tmp_path / "data", rows)
    job = write_job(tmp_path / "job.yaml", tmp_path / "data", NO_MODEL, tmp_path / "out", run=LOCAL,
                    output={"keep_columns": ["date"]})
    result = run_cli("run", str(job), "--preview", "0")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "job.json").read_text())["staged_input"], "read through a staged copy"
    got = scores(tmp_path / "out")
    assert got.height == 90 and {(r["query_id"], r["doc_id"]): r["date"] for r in got.iter_rows(named=True)} == dates
    result = run_cli("run", str(job), "--preview", "0", "--overwrite", "--set", "output.keep_columns=[]")
    assert result.exit_code == 0 and scores(tmp_path / "out").columns == ["query_id", "doc_id", "score", "rank",
                                                                              "input_row"]


def test_a_kept_column_neither_in_the_files_nor_their_directories_is_refused(tmp_path: Path, fake_engine: None) -> None:
    rows = make_pairs(6, 5)
    spark_dataset(tmp_path / "data", rows)
    first = tmp_path / "data" / f"date={DATES[0]}" / "part-00000-c000.snappy.parquet"
    job = write_job(tmp_path / "job.yaml", tmp_path / "data", NO_MODEL, tmp_path / "out", run=LOCAL,
                    output={"keep_columns": ["region"]})
    result = run_cli("run", str(job))
    assert result.exit_code == 2, result.output
    assert f"{first}: output.keep_columns names 'region', which the file lacks (nor is there a partition " \
           "directory region=... above it)" in result.output
    with_column = pl.read_parquet(first).with_columns(date=pl.lit("from the file"))
    with_column.write_parquet(first)  # one file holds a `date` column, the others have only their directory
    job = write_job(tmp_path / "job.yaml", tmp_path / "data", NO_MODEL, tmp_path / "out", run=LOCAL,
                    output={"keep_columns": ["date"]})
    result = run_cli("run", str(job))
    assert result.exit_code == 2, result.output
    assert f"output.keep_columns names 'date', a column of {first} but a partition directory (date=...) of " \
           f"{tmp_path}/data/date={DATES[1]}/part-00000-c000.snappy.parquet" in result.output
    assert not (tmp_path / "out").exists(), "nothing is written"


def test_a_file_moved_to_another_partition_is_a_changed_input(tmp_path: Path, fake_engine: None) -> None:
    """The files' content is the same, but a kept date would change: the checkpoint is not resumed as it is."""
    rows = make_pairs(9, 10, seed=4)
    spark_dataset(tmp_path / "data", rows)
    job = write_job(tmp_path / "job.yaml", f"{tmp_path}/data/date=*", NO_MODEL, tmp_path / "out", run=LOCAL,
                    output={"keep_columns": ["date"]})
    assert run_cli("run", str(job), "--preview", "0").exit_code == 0
    (tmp_path / "out" / "_SUCCESS").unlink()
    shutil.move(tmp_path / "data" / f"date={DATES[2]}", tmp_path / "data" / "date=2026-12-09")
    result = run_cli("run", str(job), "--preview", "0")
    assert result.exit_code == 2, result.output
    assert "the input files' partition directories (kept columns) changed since the checkpoint: " \
           f"{tmp_path}/data/date=2026-12-09/part-00000-c000.snappy.parquet (['{DATES[2]}'] -> ['2026-12-09'])" \
           in result.output
    result = run_cli("run", str(job), "--preview", "0", "--overwrite")
    assert result.exit_code == 0, result.output
    assert scores(tmp_path / "out").filter(pl.col("date") == "2026-12-09").height == 30


def test_hive_values_are_url_decoded_text_and_the_default_partition_is_null(tmp_path: Path, fake_engine: None) -> None:
    rows = make_pairs(3, 4)
    write_parquet(rows[:4], tmp_path / "data" / "hour=07" / "city=S%C3%A3o Paulo" / "a.parquet")
    write_parquet(rows[4:8], tmp_path / "data" / "hour=08" / "city=__HIVE_DEFAULT_PARTITION__" / "b.parquet")
    write_parquet(rows[8:], tmp_path / "data" / "hour=09" / "city=Lyon" / "c.parquet")
    job = write_job(tmp_path / "job.yaml", tmp_path / "data", NO_MODEL, tmp_path / "out", run=LOCAL,
                    output={"keep_columns": ["hour", "city"]})
    result = run_cli("run", str(job), "--preview", "0")
    assert result.exit_code == 0, result.output
    got = scores(tmp_path / "out").select("query_id", "hour", "city").unique().sort("query_id")
    assert got.to_dicts() == [{"query_id": "q000", "hour": "07", "city": "São Paulo"},
                              {"query_id": "q001", "hour": "08", "city": None},
                              {"query_id": "q002", "hour": "09", "city": "Lyon"}]
