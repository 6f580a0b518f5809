"""The input in record batches, in row order, each with the global row number of its first row.

Read by polars' streaming engine over `InputFiles.scan()` (canonical names and types): on this project's 2-core
machine it decodes the four text columns in a third of the CPU time of pyarrow's `iter_batches` plus a conversion
to polars (docs/perf-notes.md, entry 15). Memory stays at a few batches whatever the input's size.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl

from batchrank.errors import InputDataError
from batchrank.io import parquet_files
from batchrank.io.input import InputFiles

BATCH_ROWS = 1 << 20


def input_batches(files: InputFiles, columns: list[pl.Expr | str],
                  batch_rows: int | None = None) -> Iterator[tuple[int, pl.DataFrame]]:
    """(first global row, batch) over the whole input, `columns` computed from the canonical ones.

    A file polars cannot decode (corrupt pages, text that is not UTF-8) is an InputDataError that names the file
    and column, not a crash.
    """
    offset = 0
    batches = files.scan().select(columns).collect_batches(chunk_size=batch_rows or BATCH_ROWS)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pl.exceptions.PolarsError, OSError) as error:
            raise InputDataError(describe_unreadable(files, error)) from None
        if batch.height:
            yield offset, batch
            offset += batch.height


def row_numbers(offset: int, rows: int, name: str = "input_row") -> pl.Series:
    """The global row numbers of a batch of `rows` rows whose first is row `offset`."""
    return pl.Series(name, np.arange(offset, offset + rows, dtype=np.int64))


def describe_unreadable(files: InputFiles, error: BaseException) -> str:
    """Which input file (and column) cannot be decoded; re-reads file by file, column by column, streaming (so in
    bounded memory), only on this error path."""
    for path in files.paths:
        for column in files.source_columns():
            try:
                for _ in parquet_files.scan([path]).select(pl.col(column)).collect_batches():
                    pass
            except (pl.exceptions.PolarsError, OSError) as column_error:
                reason = str(column_error).splitlines()[0]
                return f"{path}: column {column!r} cannot be read ({reason}); the file is corrupt or not UTF-8 text"
    return f"input.path: the input cannot be read ({str(error).splitlines()[0]})"
