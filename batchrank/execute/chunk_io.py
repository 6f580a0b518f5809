"""Reading a chunk's rows, preparing them for the scorer, and writing its scored part; shared by the executors."""

from __future__ import annotations

import time

import numpy as np
import polars as pl

from batchrank.checkpoint import Manifest, OutputDir
from batchrank.errors import InputDataError, RunFailure
from batchrank.io.input import InputFiles, scan_pairs
from batchrank.io.parts import ChunkStats, rank_within_queries, write_part_atomically
from batchrank.io.validate import locate_row
from batchrank.plan import Chunk
from batchrank.scoring.base import PreparedChunk, Scorer
from batchrank.spec import JobSpec

ChunkWork = tuple[Chunk, pl.DataFrame, PreparedChunk]


class ChunkIO:
    """Reads a chunk's rows, prepares them for the scorer, and writes its scored part."""

    def __init__(self, spec: JobSpec, files: InputFiles, manifest: Manifest, out: OutputDir, scorer: Scorer):
        if manifest.staged_input:
            self.pairs = pl.scan_parquet(manifest.staged_input)
        else:
            self.pairs = scan_pairs(spec.input, files, spec.output.keep_columns)
        self.files, self.staged = files, manifest.staged_input is not None
        self.keep = [c for c in spec.output.keep_columns if c not in ("query_id", "doc_id")]
        self.out, self.scorer = out, scorer

    def load(self, chunk: Chunk) -> ChunkWork:
        frame = self.pairs.slice(chunk.start, chunk.num_rows).collect()
        prepared = self.scorer.prepare(frame)
        if prepared.too_long_rows:
            first = prepared.too_long_rows[0]
            row = frame.row(first, named=True)
            where = "the staged input" if self.staged else "%s row %d" % locate_row(self.files, chunk.start + first)
            raise InputDataError(
                f"{where} (query_id {row['query_id']!r}, doc_id {row['doc_id']!r}): the query and instruction "
                "alone do not fit model.max_model_len; raise it or shorten the query"
            )
        return chunk, frame, prepared

    def finish(self, work: ChunkWork, scores: np.ndarray, seconds: float) -> ChunkStats:
        chunk, frame, prepared = work
        scored = frame.select("query_id", "doc_id", *self.keep).with_columns(score=pl.Series(scores))
        scored = rank_within_queries(scored).select("query_id", "doc_id", "score", "rank", *self.keep)
        stats = ChunkStats(
            chunk.chunk_id, prepared.num_pairs, prepared.prompt_tokens, prepared.truncated_pairs, seconds, time.time()
        )
        path = self.out.part_path(chunk)
        try:
            write_part_atomically(scored, path, stats)
        except OSError as error:
            raise RunFailure(f"{path}: cannot write the part: {error}") from error
        return stats
