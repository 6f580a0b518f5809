"""The write stage: rank a chunk's scores within each query, write its rejected rows, then its scores part.

With `row_id`, each row also carries `input_row`, its global row number in the input (counted from 0 over the
input files in order), so that scores join back to the input whatever the ids (repeated pairs, rejects).

The part is written last: a part that exists means every row of its chunk is accounted for (scored, or rejected in
the rejects piece written before it).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from batchrank.errors import RunFailure
from batchrank.io.parts import INPUT_ROW, ChunkStats, PartWritten, rank_within_queries, write_part
from batchrank.io.rejects import write_rejects
from batchrank.output.layout import OutputLayout
from batchrank.pipeline.prepare import PreparedWork
from batchrank.pipeline.score import Scores


class ChunkWriter:
    def __init__(self, layout: OutputLayout, keep_columns: list[str], worker: str, row_id: bool = True):
        self.layout, self.worker, self.row_id = layout, worker, row_id
        self.keep = [c for c in keep_columns if c not in ("query_id", "doc_id")]

    def write(self, work: PreparedWork, scores: Scores) -> PartWritten:
        chunk, prepared, rejected = work.chunk, work.prepared, work.rejected
        scored = work.frame.select("query_id", "doc_id", *self.keep).with_columns(
            score=pl.Series(np.asarray(scores.values), dtype=pl.Float64))
        ids = []
        if self.row_id:
            rows = work.input_rows if work.input_rows is not None else pl.repeat(None, work.frame.height, eager=True)
            scored = scored.with_columns(pl.Series(INPUT_ROW, rows, dtype=pl.Int64))
            ids = [INPUT_ROW]
        scored = rank_within_queries(scored).select("query_id", "doc_id", "score", "rank", *self.keep, *ids)
        stats = ChunkStats(
            chunk.chunk_id, prepared.num_pairs, prepared.prompt_tokens, prepared.truncated_pairs,
            round(scores.seconds, 6), scores.finished_at,
            rejected_pairs=0 if rejected is None else rejected.height, worker=self.worker,
        )
        rejects_bytes = 0
        if rejected is not None:
            rejects_bytes = write_rejects(rejected, self.layout.chunk_rejects(chunk.chunk_id))
        path = self.layout.part(chunk.chunk_id)
        try:
            size = write_part(scored, path, stats)
            # The ledger vouches for the part by the size and time a listing will show (one stat, or a HEAD).
            mtime_ns = path.info().mtime_ns
        except OSError as error:
            raise RunFailure(f"{path}: cannot write the part: {error}") from error
        return PartWritten(stats, size, rejects_bytes, mtime_ns)
