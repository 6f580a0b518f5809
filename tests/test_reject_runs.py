"""io/reject_runs.py: sorted runs merge into one sorted stream; a cursor marks listed rows batch by batch."""

from __future__ import annotations

import numpy as np
import polars as pl

from batchrank.planning.reject_runs import RowCursor, merge_sorted


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
