"""planning/reject_stream.py: each check's named run of decisions, merged into one stream in input order; a cursor
marks listed rows batch by batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from batchrank.planning.reject_stream import RejectStream, RowCursor, decisions, merge_sorted


def test_runs_merge_in_order_whatever_their_batches() -> None:
    rng = np.random.default_rng(1)
    rows = rng.permutation(10_000)
    runs = []
    for part in np.array_split(rows, 5):
        ordered = np.sort(part)
        runs.append([pl.DataFrame({"input_row": chunk}) for chunk in np.array_split(ordered, rng.integers(1, 9))])
    merged = pl.concat(list(merge_sorted([iter(batches) for batches in runs], "input_row")))
    assert merged["input_row"].to_list() == list(range(10_000))
    assert list(merge_sorted([iter([]), iter([])], "input_row")) == []


def test_the_cursor_marks_listed_rows_of_each_batch() -> None:
    listed = np.array([0, 3, 4, 9, 10, 11, 25, 99], dtype=np.int64)
    cursor = RowCursor(iter(np.array_split(listed, 3)))
    marks = np.concatenate([cursor.mask(start, 7) for start in range(0, 105, 7)])
    assert np.flatnonzero(marks).tolist() == listed.tolist()


def test_checks_emit_into_named_runs_read_back_as_one_stream_in_input_order(tmp_path: Path) -> None:
    stream = RejectStream(tmp_path / "rejects")
    first, second = stream.run("row checks"), stream.run("queries too long", share=0.25)
    frame = pl.DataFrame({"query_id": list("aabbcc"), "doc_id": list("123456")})
    first.emit(decisions(frame, 100, pl.Series([True, False, False, True, False, False]), "document is empty"))
    second.emit(decisions(frame, 100, pl.Series([False, True, False, False, False, True]), "too long"))
    first.emit(decisions(frame[4:], 104, pl.Series([True, False]), "query is null"))
    stream.close()
    merged = pl.concat(list(stream.merged()))
    assert merged.rows() == [(100, "a", "1", "document is empty"), (101, "a", "2", "too long"),
                             (103, "b", "4", "document is empty"), (104, "c", "5", "query is null"),
                             (105, "c", "6", "too long")]
    assert np.concatenate(list(stream.rows())).tolist() == [100, 101, 103, 104, 105]
    assert stream.counts == {"document is empty": 2, "too long": 2, "query is null": 1} and stream.total == 5
    assert (first.rows, second.rows) == (3, 2)
    assert np.concatenate(list(first.rows_in_order())).tolist() == [100, 103, 104]
    with pytest.raises(ValueError, match="already has a run named 'row checks'"):
        stream.run("row checks")
