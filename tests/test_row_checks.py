"""io/row_checks.py: length statistics from a histogram equal polars' over the whole column; the first failing
check names a row's reason."""

from __future__ import annotations

import numpy as np
import polars as pl

from batchrank.planning.row_checks import LengthHistogram, check_columns, reason_column


def test_histogram_statistics_equal_polars_over_the_whole_column() -> None:
    rng = np.random.default_rng(2)
    for trial in range(300):
        values = rng.integers(0, [3, 100, 70_000, 300_000][trial % 4], int(rng.integers(1, 80)))
        histogram = LengthHistogram()
        for part in np.array_split(values, 3):
            histogram.add(pl.Series(part))
        histogram.add(pl.Series([None], dtype=pl.Int64))  # nulls are left out, as polars leaves them
        column = pl.Series(values)
        assert histogram.stats() == {"min": int(column.min()), "mean": round(float(column.mean()), 1),
                                     "p50": int(column.quantile(0.5)), "p95": int(column.quantile(0.95)),
                                     "max": int(column.max())}
    assert LengthHistogram().stats() == {}


def test_the_first_failing_check_is_the_reason() -> None:
    frame = pl.DataFrame({"query_id": [None, "q", "q", "q"], "doc_id": ["d", " ", "d", "d"],
                          "query": [None, "", "q", "q"], "document": ["x", "x", "\u200b", "boiling\x00point"]})
    reasons = frame.select(check_columns()).select(reason_column())[:, 0].to_list()
    assert reasons == ["query_id is null", "doc_id is empty", "document is empty", None]
