"""planning/staging.py: the external sort groups a scattered input by query (queries in order of first appearance, rows in
input order inside a query, rejected rows left out) into buckets bounded by the memory setting."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from batchrank.errors import SpecError
from batchrank.io.input import open_input
from batchrank.output.layout import SOURCE_ROW
from batchrank.planning.memory import BUFFERS_PER_BATCH, PlanMemory
from batchrank.planning.staging import STAGED_ROW_GROUP_ROWS, bucket_of_ranks, stage_grouped_copy
from batchrank.spec import InputSpec, parse_spec
from batchrank.storage import StoragePath
from conftest import make_pairs, write_parquet

COLUMNS = {"query_id": "qid", "query": "query_text", "doc_id": "pid", "document": "passage"}


def test_buckets_hold_consecutive_queries_up_to_the_budget() -> None:
    sizes = np.array([3, 3, 3, 10, 1, 1, 1, 1, 2])
    buckets = bucket_of_ranks(sizes, 5)
    assert buckets.tolist() == [0, 0, 1, 1, 2, 3, 3, 3, 3]  # bucket k starts where the rows pass k * 5
    for bucket in np.unique(buckets):  # every query but a bucket's last one starts inside its window of 5 rows
        assert sizes[buckets == bucket][:-1].sum() < 5
    assert bucket_of_ranks(sizes, 1000).tolist() == [0] * 9


def scattered(tmp_path: Path) -> tuple[Path, pl.DataFrame]:
    rows = make_pairs(30, 40, seed=7)
    random.Random(3).shuffle(rows)
    for i, row in enumerate(rows):
        row["bm25_rank"] = i
    for index, part in enumerate(np.array_split(np.arange(len(rows)), 3)):
        write_parquet([rows[i] for i in part], tmp_path / "in" / f"part-{index}.parquet")
    return tmp_path / "in", pl.DataFrame(rows)


@pytest.mark.parametrize("memory_bytes", [2**30, 40_000])
def test_staged_copy_is_grouped_in_first_appearance_order(tmp_path: Path, memory_bytes: int) -> None:
    source, frame = scattered(tmp_path)
    files = open_input(InputSpec(path=str(source), columns=COLUMNS), ["bm25_rank"])
    excluded = [5, 6, 7, 300, 301, 1199]
    kept = frame.with_row_index(SOURCE_ROW).filter(~pl.col(SOURCE_ROW).is_in(excluded))
    expected = (kept.with_columns(pl.col(SOURCE_ROW).min().over("qid").alias("_first"))
                .sort("_first", SOURCE_ROW).drop("_first"))
    queries = expected.group_by("qid", maintain_order=True).len("rows").rename({"qid": "query_id"})
    destination = tmp_path / "staged.parquet"
    result = stage_grouped_copy(files, StoragePath.of(destination), queries,
                                iter([np.array(excluded[:4]), np.array(excluded[4:])]), tmp_path / "scratch",
                                PlanMemory(sort_bytes=memory_bytes))
    staged = pl.read_parquet(destination)
    assert staged.columns == [SOURCE_ROW, "query_id", "query", "doc_id", "document", "bm25_rank"]
    assert staged[SOURCE_ROW].to_list() == expected[SOURCE_ROW].cast(pl.Int64).to_list()
    assert staged["doc_id"].to_list() == expected["pid"].to_list()
    assert staged["bm25_rank"].to_list() == expected["bm25_rank"].to_list()
    metadata = pq.read_metadata(destination)
    assert max(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)) <= STAGED_ROW_GROUP_ROWS
    if memory_bytes < 2**20:
        assert result.buckets > 5, "a small memory setting sorts the copy in many buckets"
    else:
        assert result.buckets == 1
    assert not any((tmp_path / "scratch").rglob("*.arrows")), "every bucket file is removed once written"


def test_the_memory_settings_have_a_default_and_a_floor() -> None:
    tree = {"input": {"path": "x"}, "model": {"path": "m"}, "output": {"path": "o"}}
    assert parse_spec(tree).run.staging_sort_mib == 1024
    assert parse_spec(tree, overrides=["run.staging_sort_mib=64"]).run.staging_sort_mib == 64
    with pytest.raises(SpecError, match="run.staging_sort_mib"):
        parse_spec(tree, overrides=["run.staging_sort_mib=8"])
    tree = {"input": {"path": "x"}, "model": {"path": "m"}, "output": {"path": "o"}}
    assert parse_spec(dict(tree)).run.plan_read_mib == 256
    run = parse_spec(dict(tree), overrides=["run.plan_read_mib=64"]).run
    assert PlanMemory.of(run) == PlanMemory(64 << 20, 1024 << 20)
    with pytest.raises(SpecError, match="run.plan_read_mib"):
        parse_spec(dict(tree), overrides=["run.plan_read_mib=16"])


def test_buckets_over_the_budget_are_sorted_in_slices_and_a_huge_query_streamed(tmp_path: Path) -> None:
    """The first batch's short rows size the buckets; the long rows after them overflow the sort budget: those
    buckets are read back a slice of queries at a time, and a query larger than the budget on its own unsorted."""
    rows = make_pairs(40, 12, seed=5) + [{"qid": "q-huge", "query_text": "huge", "pid": f"h{i}", "passage": "y" * 900}
                                         for i in range(30)]
    random.Random(4).shuffle(rows)
    rows.sort(key=lambda row: row["qid"] != "q000")  # q000's short rows first: they fill the first batch
    for row in rows[12:]:
        row["passage"] = row["passage"] * 20  # every later row ~20 times longer
    for index, part in enumerate(np.array_split(np.arange(len(rows)), 2)):
        write_parquet([rows[i] for i in part], tmp_path / "in" / f"part-{index}.parquet")
    files = open_input(InputSpec(path=str(tmp_path / "in"), columns=COLUMNS))
    frame = pl.DataFrame(rows).with_row_index(SOURCE_ROW)
    expected = (frame.with_columns(pl.col(SOURCE_ROW).min().over("qid").alias("_first"))
                .sort("_first", SOURCE_ROW).drop("_first"))
    queries = expected.group_by("qid", maintain_order=True).len("rows").rename({"qid": "query_id"})
    destination = tmp_path / "staged.parquet"
    memory = PlanMemory(read_bytes=BUFFERS_PER_BATCH * 3_000, sort_bytes=400_000)  # batches of 3,000 bytes
    staged = stage_grouped_copy(files, StoragePath.of(destination), queries, None, tmp_path / "scratch", memory)
    assert staged.sliced > 0, "some bucket came out over the budget"
    copy = pl.read_parquet(destination)
    assert copy[SOURCE_ROW].to_list() == expected[SOURCE_ROW].cast(pl.Int64).to_list()
    assert copy["doc_id"].to_list() == expected["pid"].to_list()
    assert not any((tmp_path / "scratch").rglob("*.arrows"))
