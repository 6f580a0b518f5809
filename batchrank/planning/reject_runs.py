"""Rows rejected before scoring, held on local disk as runs sorted by input row (one for the row checks, one for
queries too long, one per duplicate partition), merged into input order as they are read back: for
OUTPUT/rejects/plan.parquet, and as the rows a staged copy leaves out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from batchrank.io.input import InputFiles
from batchrank.io.rejects import REJECTS_COLUMNS
from batchrank.planning.spill import FrameSpill

RUN_COLUMNS = ("input_row", "query_id", "doc_id", "reason")
ROW_CHECKS_RUN, TOO_LONG_RUN, FIRST_DUPLICATES_RUN = 0, 1, 2
_PIECE_ROWS = 1 << 16  # rows per stored batch: a merge holds one batch of each run


class RejectRuns:
    def __init__(self, directory: Path, duplicate_partitions: int):
        self.spill = FrameSpill(directory, FIRST_DUPLICATES_RUN + duplicate_partitions, "rejects")
        self.counts: dict[str, int] = {}

    def add(self, run: int, frame: pl.DataFrame) -> None:
        """Rows (RUN_COLUMNS) of one run, in input order and after every row this run already holds."""
        if not frame.height:
            return
        for piece in frame.select(RUN_COLUMNS).iter_slices(_PIECE_ROWS):
            self.spill.append_to(run, piece)
        for reason, count in frame["reason"].value_counts().iter_rows():
            self.counts[reason] = self.counts.get(reason, 0) + count

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def close(self) -> None:
        self.spill.close()

    def merged(self) -> Iterator[pl.DataFrame]:
        """Every rejected row, in input order, a batch at a time."""
        return merge_sorted([self.spill.batches(run) for run in range(self.spill.partitions)], "input_row")

    def rows(self) -> Iterator[np.ndarray]:
        """The rejected rows' input row numbers, ascending."""
        for batch in self.merged():
            yield batch["input_row"].to_numpy()

    def write(self, files: InputFiles, destination: Path) -> None:
        """The rejects (REJECTS_COLUMNS: ids, reason, file and row inside it) as one Parquet file, input order."""
        writer = None
        for batch in self.merged():
            located = files.locate_many(batch["input_row"])
            table = pl.concat([batch.select("query_id", "doc_id", "reason"), located], how="horizontal")
            arrow = table.select(REJECTS_COLUMNS).to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(destination, arrow.schema, compression="zstd")
            writer.write_table(arrow)
        if writer is not None:
            writer.close()


def merge_sorted(runs: list[Iterator[pl.DataFrame]], key: str) -> Iterator[pl.DataFrame]:
    """Merge runs each sorted by `key` (batch by batch) into one sorted stream. Each step emits every held row up to
    the smallest last key among the runs' current batches, so at least one run moves on to its next batch."""
    heads: list[pl.DataFrame | None] = [next(run, None) for run in runs]
    while any(head is not None for head in heads):
        bound = min(head[key][-1] for head in heads if head is not None)
        taken = []
        for index, head in enumerate(heads):
            if head is None:
                continue
            cut = int(np.searchsorted(head[key].to_numpy(), bound, side="right"))
            taken.append(head[:cut])
            rest = head[cut:]
            heads[index] = rest if rest.height else next(runs[index], None)
        yield pl.concat(taken).sort(key)


class RowCursor:
    """Marks, batch after batch of the input, its rows among ascending row numbers streamed from `rows`."""

    def __init__(self, rows: Iterator[np.ndarray]):
        self._rows = rows
        self._held = np.zeros(0, dtype=np.int64)

    def mask(self, start: int, count: int) -> np.ndarray:
        """Which of the rows [start, start + count) are listed; batches must come in ascending order."""
        end = start + count
        while not self._held.size or self._held[-1] < end:
            more = next(self._rows, None)
            if more is None:
                break
            self._held = np.concatenate([self._held, more])
        cut = int(np.searchsorted(self._held, end))
        inside, self._held = self._held[:cut], self._held[cut:]
        marked = np.zeros(count, dtype=bool)
        marked[inside[inside >= start] - start] = True
        return marked
