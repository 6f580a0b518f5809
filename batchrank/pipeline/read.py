"""The read stage: a chunk's rows, from the input or from its staged copy, with each row's place in the input."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from batchrank.errors import RunFailure
from batchrank.io.parquet_files import RowRangeReader
from batchrank.output.layout import SOURCE_ROW
from batchrank.pipeline.context import JobContext
from batchrank.plan import Chunk
from batchrank.storage import StoragePath


@dataclass
class ChunkRows:
    chunk: Chunk
    frame: pl.DataFrame  # query_id, query, doc_id, document, then the kept columns
    input_rows: pl.Series | None  # each row's global row number in the input (None: unknown, an old staged copy)


class ChunkReader:
    """Reads chunks by row range, touching only the row groups that hold them (thread-safe)."""

    def __init__(self, context: JobContext):
        self.files = context.files
        staged = context.manifest.staged_input
        self.staged = StoragePath.of(staged) if staged else None
        # A staged copy holds canonical columns already (and SOURCE_ROW); the input is cast to them as it is read.
        self.rows = RowRangeReader([self.staged] if self.staged else self.files.paths,
                                   None if self.staged else self.files.num_rows)

    def read(self, chunk: Chunk) -> ChunkRows:
        try:
            if self.staged is None:
                frame = self.files.read_rows(self.rows, chunk.start, chunk.num_rows)
                rows = pl.Series(np.arange(chunk.start, chunk.start + frame.height, dtype=np.int64))
                return ChunkRows(chunk, frame, rows)
            table = pl.from_arrow(pa.concat_tables(self.rows.read(chunk.start, chunk.num_rows)))
        except (pl.exceptions.PolarsError, OSError, pa.ArrowException) as error:
            raise RunFailure(f"chunk {chunk.chunk_id}: cannot read its rows of the input: {error}") from error
        assert isinstance(table, pl.DataFrame)
        rows = table[SOURCE_ROW].cast(pl.Int64) if SOURCE_ROW in table.columns else None
        return ChunkRows(chunk, table.drop(SOURCE_ROW, strict=False), rows)
