"""io/batches.py: the input read in batches of about a byte budget whatever its row groups (one of a file's whole
rows, or thousands of tiny ones), in input order, with canonical names and types, only the columns used."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchrank.io.batches import input_batches
from batchrank.io.input import open_input
from batchrank.spec import InputSpec

COLUMNS = {"query_id": "qid", "query": "query_text", "doc_id": "pid", "document": "passage"}


def write(path: Path, rows: int, start: int, row_group_size: int, long_from: int | None = None) -> pl.DataFrame:
    """Rows with repeated query ids and texts (dictionary-encoded by the writer) and distinct documents; documents
    from input row `long_from` on are 50 times longer."""
    long_from = start + rows if long_from is None else long_from
    frame = pl.DataFrame({"n": pl.int_range(start, start + rows, eager=True)}).select(
        (pl.col("n") // 100).cast(pl.Int16).alias("qid"),  # an integer id, read as Int64 whatever its width
        ("what is " + (pl.col("n") // 100).cast(pl.String)).alias("query_text"),
        ("d" + pl.col("n").cast(pl.String)).alias("pid"),
        (pl.when(pl.col("n") >= long_from).then(pl.lit("x" * 1000)).otherwise(pl.lit("word " * 4))
         + pl.col("n").cast(pl.String)).alias("passage"),
        (pl.col("n") * 2).alias("extra"),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(frame.to_arrow(), path, row_group_size=row_group_size)
    return frame


@pytest.mark.parametrize("row_group_size", [20_000, 7])
def test_batches_follow_the_budget_not_the_row_groups(tmp_path: Path, row_group_size: int) -> None:
    frames = [write(tmp_path / "in" / f"part-{i}.parquet", 20_000, i * 20_000, row_group_size, long_from=20_000)
              for i in range(2)]  # the second file's rows are long: its footer says so before a row is read
    files = open_input(InputSpec(path=str(tmp_path / "in"), columns=COLUMNS), ["extra"])
    budget = 200_000
    seen, offsets = [], []
    for offset, batch in input_batches(files, [pl.all()], budget):
        offsets.append(offset)
        seen.append(batch)
        decoded = batch.select("query", "doc_id", "document").to_arrow().nbytes + 8 * 2 * batch.height
        assert decoded <= 2 * budget, f"a batch of {batch.height} rows holds {decoded} bytes"
    whole = pl.concat(seen)
    expected = pl.concat(frames)
    assert whole.columns == ["query_id", "query", "doc_id", "document", "extra"]
    assert whole.schema["query_id"] == pl.Int64 and whole.schema["query"] == pl.String
    assert whole["doc_id"].to_list() == expected["pid"].to_list(), "every row once, in input order"
    assert whole["query"].to_list() == expected["query_text"].to_list()
    assert whole["document"].to_list() == expected["passage"].to_list()
    assert offsets == [sum(b.height for b in seen[:i]) for i in range(len(seen))]
    if row_group_size > budget // 100:
        assert seen[0].height > 5 * seen[-2].height, "the long rows of the second file come in smaller batches"


def test_only_the_columns_used_are_read(tmp_path: Path) -> None:
    write(tmp_path / "in.parquet", 1000, 0, 300)
    files = open_input(InputSpec(path=str(tmp_path / "in.parquet"), columns=COLUMNS), ["extra"])
    batches = list(input_batches(files, ["query_id", pl.col("doc_id").str.len_chars().alias("n")], 1 << 20))
    assert [batch.columns for _, batch in batches] == [["query_id", "n"]] * len(batches)
    assert pl.concat(batch for _, batch in batches)["query_id"].to_list() == [i // 100 for i in range(1000)]


def test_text_that_is_not_utf8_names_the_file_and_column(tmp_path: Path) -> None:
    write(tmp_path / "in" / "a.parquet", 10, 0, 10)
    offsets = pa.array([0, 2, 4], pa.int32())
    bad = pa.StringArray.from_buffers(2, offsets.buffers()[1], pa.py_buffer(b"ok\xff\xfe"))
    table = pa.table({"qid": pa.array([1, 1], pa.int16()), "query_text": ["q", "q"], "pid": ["a", "b"],
                      "passage": bad, "extra": pa.array([0, 0], pa.int64())})
    pq.write_table(table, tmp_path / "in" / "b.parquet")
    files = open_input(InputSpec(path=str(tmp_path / "in"), columns=COLUMNS))
    with pytest.raises(Exception, match=r"b\.parquet: column 'passage' cannot be read .*not UTF-8"):
        list(input_batches(files, [pl.all()], 1 << 20))
