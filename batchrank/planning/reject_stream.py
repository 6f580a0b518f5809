"""The one stream of the plan's decisions: every input row it will not score, as (input_row, query_id, doc_id,
reason). Each check emits its decisions into a run of its own, named for the check ("row checks", "queries too
long", "duplicates, hash partition 3"), in input order; the stream reads the runs back merged into input order:
for OUTPUT/rejects/plan.parquet, as the rows a staged copy leaves out, and as the rows the query sizes leave out.

Runs live on local scratch disk (spill.py), so the stream's memory is one piece of each run while it is merged,
whatever the number of rejected rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from batchrank.io.batches import row_numbers
from batchrank.io.input import InputFiles
from batchrank.io.rejects import REJECTS_COLUMNS
from batchrank.planning.spill import FrameSpill

DECISION_COLUMNS = ("input_row", "query_id", "doc_id", "reason")
# Rows held in all while the runs are merged (one stored piece of each run), by default: a run stores pieces of
# its share.
MERGE_ROWS = 1 << 18
_PIECE_ROWS_AT_LEAST = 1 << 8


def decisions(batch: pl.DataFrame, offset: int, mask: pl.Series, reason: str | pl.Expr) -> pl.DataFrame:
    """The rows of a batch (whose first is input row `offset`) that `mask` marks, as decisions: DECISION_COLUMNS."""
    rows = row_numbers(offset, batch.height)
    reasons = reason if isinstance(reason, pl.Expr) else pl.lit(reason)
    return batch.filter(mask).select(rows.filter(mask), "query_id", "doc_id", reasons.alias("reason"))


class RejectRun:
    """One check's decisions, appended in input order (each emit after every row the run already holds)."""

    def __init__(self, stream: RejectStream, name: str, spill: FrameSpill, piece_rows: int):
        self.stream, self.name, self._spill, self.piece_rows = stream, name, spill, piece_rows
        self.rows = 0

    def emit(self, frame: pl.DataFrame) -> None:
        """Rows (DECISION_COLUMNS) rejected by this check."""
        if not frame.height:
            return
        for piece in frame.select(DECISION_COLUMNS).iter_slices(self.piece_rows):
            self._spill.append_to(0, piece)
        self.rows += frame.height
        self.stream.count(frame["reason"])

    def finish(self) -> None:
        """Nothing more comes: the run can be read (a later pass reads the row checks' run as it goes)."""
        self._spill.close()

    def batches(self) -> Iterator[pl.DataFrame]:
        return self._spill.batches(0)

    def rows_in_order(self) -> Iterator[np.ndarray]:
        """The run's input row numbers, ascending."""
        for batch in self.batches():
            yield batch["input_row"].to_numpy()


class RejectStream:
    """The named runs of every check, and the counts of their decisions per reason."""

    def __init__(self, directory: Path, merge_rows: int = MERGE_ROWS):
        self.directory, self.merge_rows = directory, merge_rows
        self.runs: dict[str, RejectRun] = {}
        self.counts: dict[str, int] = {}

    def run(self, name: str, share: float = 0.5) -> RejectRun:
        """A new run for the check `name` (each name once), taking `share` of `merge_rows` while merged (the
        shares of every run add up to at most 1)."""
        if name in self.runs:
            raise ValueError(f"the reject stream already has a run named {name!r}")
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        piece_rows = max(_PIECE_ROWS_AT_LEAST, int(self.merge_rows * share))
        self.runs[name] = RejectRun(self, name, FrameSpill(self.directory, 1, f"rejects-{slug}"), piece_rows)
        return self.runs[name]

    def count(self, reasons: pl.Series) -> None:
        for reason, count in reasons.value_counts().iter_rows():
            self.counts[reason] = self.counts.get(reason, 0) + count

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def close(self) -> None:
        for run in self.runs.values():
            run.finish()

    def merged(self) -> Iterator[pl.DataFrame]:
        """Every decision, in input order, a batch at a time."""
        return merge_sorted([run.batches() for run in self.runs.values()], "input_row")

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
