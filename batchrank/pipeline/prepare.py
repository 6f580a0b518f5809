"""The prepare stage: render, truncate and tokenize a chunk's pairs (off the engine's thread), and reject the rows
whose query and instruction alone do not fit max_model_len."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from batchrank.errors import InputDataError
from batchrank.io.input import InputFiles
from batchrank.io.rejects import TOO_LONG_REASON, too_long_rejects
from batchrank.pipeline.read import ChunkRows
from batchrank.plan import Chunk
from batchrank.scoring.base import PreparedChunk, Scorer


@dataclass
class PreparedWork:
    """A chunk read and prepared: the rows to score, and the rows rejected while preparing (or None)."""

    chunk: Chunk
    frame: pl.DataFrame
    prepared: PreparedChunk
    rejected: pl.DataFrame | None = None
    input_rows: pl.Series | None = None  # each row of `frame`'s global row number in the input (None: unknown)


class ChunkPreparer:
    def __init__(self, scorer: Scorer, files: InputFiles, on_bad_rows: str):
        self.scorer, self.files, self.on_bad_rows = scorer, files, on_bad_rows

    def prepare(self, rows: ChunkRows) -> PreparedWork:
        frame = rows.frame
        prepared = self.scorer.prepare(frame)
        if not prepared.too_long_rows:
            return PreparedWork(rows.chunk, frame, prepared, input_rows=rows.input_rows)
        if self.on_bad_rows == "error":
            first = prepared.too_long_rows[0]
            row = frame.row(first, named=True)
            where = ("the staged input" if rows.input_rows is None
                     else "%s row %d" % self.files.locate(rows.input_rows[first]))
            raise InputDataError(
                f"{where} (query_id {row['query_id']!r}, doc_id {row['doc_id']!r}): {TOO_LONG_REASON}; raise it, "
                "shorten the query, or set input.on_bad_rows: skip"
            )
        too_long = np.zeros(frame.height, dtype=bool)
        too_long[prepared.too_long_rows] = True
        mask = pl.Series(too_long)
        rejected = too_long_rejects(frame, mask, rows.input_rows, self.files)
        frame = frame.filter(~mask)  # the rest of the chunk is scored; prepared again without the rejected rows
        prepared = self.scorer.prepare(frame) if frame.height else PreparedChunk(0, 0, 0, None)
        input_rows = None if rows.input_rows is None else rows.input_rows.filter(~mask)
        return PreparedWork(rows.chunk, frame, prepared, rejected, input_rows)
