"""Reading a chunk's rows, preparing them for the scorer, and writing its scored part; shared by the executors."""

from __future__ import annotations

import logging
import time
from typing import NamedTuple

import numpy as np
import polars as pl
import pyarrow as pa

from batchrank import storage
from batchrank.checkpoint import Manifest, OutputDir
from batchrank.errors import InputDataError, RunFailure
from batchrank.io.input import InputFiles, pair_columns, scan_pairs, source_columns
from batchrank.io.parquet_files import RowRangeReader
from batchrank.io.parts import ChunkStats, rank_within_queries, write_part_atomically, write_table_atomically
from batchrank.io.validate import REJECTS_COLUMNS, TOO_LONG_REASON, locate_row, source_locations
from batchrank.plan import SOURCE_ROW, Chunk
from batchrank.scoring.base import PreparedChunk, Scorer
from batchrank.spec import JobSpec

log = logging.getLogger(__name__)


class ChunkWork(NamedTuple):
    """A chunk read and prepared: the rows to score, and the rows rejected while preparing (or None)."""

    chunk: Chunk
    frame: pl.DataFrame
    prepared: PreparedChunk
    rejected: pl.DataFrame | None = None


def score_prepared(scorer: Scorer, prepared: PreparedChunk) -> np.ndarray:
    """The scorer's scores; a chunk whose every row was rejected has nothing to send to the engine."""
    return np.empty(0) if prepared.num_pairs == 0 else scorer.score(prepared)


def score_together(scorer: Scorer, prepared: list[PreparedChunk]) -> list[np.ndarray] | None:
    """Several chunks in one engine call; None when that can't be done or the call failed, and the caller scores
    them one by one, so that a failure is tied to its own chunk."""
    score_many = getattr(scorer, "score_many", None)
    if len(prepared) < 2 or score_many is None or not all(p.num_pairs for p in prepared):
        return None
    try:
        return score_many(prepared)
    except Exception as error:  # noqa: BLE001 - any engine error: retried chunk by chunk by the caller
        log.warning("an engine call for %d chunks failed (%s); scoring them one by one", len(prepared), error)
        return None


class ChunkIO:
    """Reads a chunk's rows, prepares them for the scorer, and writes its scored part."""

    def __init__(self, spec: JobSpec, files: InputFiles, manifest: Manifest, out: OutputDir, scorer: Scorer):
        # Objects are read by the row groups that hold a chunk; local files through polars' slice, as before.
        self.rows: RowRangeReader | None = None
        if manifest.staged_input and storage.is_remote(manifest.staged_input):
            self.rows = RowRangeReader([storage.as_location(manifest.staged_input)])
            self.columns, self.select = None, [pl.all()]
        elif manifest.staged_input:
            self.pairs = pl.scan_parquet(manifest.staged_input)
        elif any(storage.is_remote(path) for path in files.paths):
            self.rows = RowRangeReader(files.paths, files.num_rows)
            self.columns = source_columns(spec.input, spec.output.keep_columns)
            self.select = pair_columns(spec.input, spec.output.keep_columns)
        else:
            self.pairs = scan_pairs(spec.input, files, spec.output.keep_columns)
        self.files, self.staged = files, manifest.staged_input is not None
        self.keep = [c for c in spec.output.keep_columns if c not in ("query_id", "doc_id")]
        self.out, self.scorer = out, scorer
        self.on_bad_rows = spec.input.on_bad_rows

    def _input_rows(self, chunk: Chunk, frame: pl.DataFrame) -> pl.Series | None:
        """Each frame row's global row number in the input (None for a staged copy that predates SOURCE_ROW)."""
        if SOURCE_ROW in frame.columns:
            return frame[SOURCE_ROW].cast(pl.Int64)
        if self.staged:
            return None
        return pl.Series(np.arange(chunk.start, chunk.start + frame.height, dtype=np.int64))

    def _read(self, chunk: Chunk) -> pl.DataFrame:
        if self.rows is None:
            return self.pairs.slice(chunk.start, chunk.num_rows).collect()
        frame = pl.from_arrow(self.rows.read(chunk.start, chunk.num_rows, self.columns))
        assert isinstance(frame, pl.DataFrame)
        return frame.select(self.select)

    def load(self, chunk: Chunk) -> ChunkWork:
        try:
            frame = self._read(chunk)
        except (pl.exceptions.PolarsError, OSError, pa.ArrowException) as error:
            raise RunFailure(f"chunk {chunk.chunk_id}: cannot read its rows of the input: {error}") from error
        prepared = self.scorer.prepare(frame)
        if not prepared.too_long_rows:
            return ChunkWork(chunk, frame, prepared)
        rows = self._input_rows(chunk, frame)
        if self.on_bad_rows == "error":
            first = prepared.too_long_rows[0]
            row = frame.row(first, named=True)
            where = "the staged input" if rows is None else "%s row %d" % locate_row(self.files, rows[first])
            raise InputDataError(
                f"{where} (query_id {row['query_id']!r}, doc_id {row['doc_id']!r}): {TOO_LONG_REASON}; raise it, "
                "shorten the query, or set input.on_bad_rows: skip"
            )
        too_long = np.zeros(frame.height, dtype=bool)
        too_long[prepared.too_long_rows] = True
        mask = pl.Series(too_long)
        rejected = frame.filter(mask).select("query_id", "doc_id").with_columns(reason=pl.lit(TOO_LONG_REASON))
        if rows is None:
            located = pl.DataFrame({"file": [None] * rejected.height, "row": [None] * rejected.height},
                                   schema={"file": pl.String, "row": pl.Int64})
        else:
            located = source_locations(self.files, rows.filter(mask))
        rejected = pl.concat([rejected, located], how="horizontal").select(REJECTS_COLUMNS)
        frame = frame.filter(~mask)  # the rest of the chunk is scored; prepared again without the rejected rows
        prepared = self.scorer.prepare(frame) if frame.height else PreparedChunk(0, 0, 0, None)
        return ChunkWork(chunk, frame, prepared, rejected)

    def finish(self, work: ChunkWork, scores: np.ndarray, seconds: float) -> ChunkStats:
        """Write the chunk's rejected rows (if any), then its scores part: the part, written last, marks it done."""
        chunk, frame, prepared, rejected = work
        scored = frame.select("query_id", "doc_id", *self.keep).with_columns(score=pl.Series(scores, dtype=pl.Float64))
        scored = rank_within_queries(scored).select("query_id", "doc_id", "score", "rank", *self.keep)
        stats = ChunkStats(
            chunk.chunk_id, prepared.num_pairs, prepared.prompt_tokens, prepared.truncated_pairs, seconds, time.time(),
            rejected_pairs=0 if rejected is None else rejected.height,
        )
        if rejected is not None:
            path = self.out.rejects_part_path(chunk)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_table_atomically(rejected, path)
            except OSError as error:
                raise RunFailure(f"{path}: cannot write the chunk's rejected rows: {error}") from error
        path = self.out.part_path(chunk)
        try:
            write_part_atomically(scored, path, stats)
        except OSError as error:
            raise RunFailure(f"{path}: cannot write the part: {error}") from error
        return stats
