"""A finished job's output directory, read back for evaluation, export and the report."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl

from batchrank import storage
from batchrank.errors import CheckpointError
from batchrank.io import parquet_files
from batchrank.io.parts import ChunkStats
from batchrank.output.checkpoint import find_finished
from batchrank.output.layout import OutputLayout
from batchrank.output.manifest import Manifest, read_manifest
from batchrank.storage import StoragePath

# Rows a streaming step (eval, export, the report) holds at a time; a few hundred MiB of ids and scores at most.
BATCH_ROWS = 1_000_000


@dataclass(frozen=True)
class FinishedOutput:
    """OUTPUT/ of a job that wrote _SUCCESS: its plan, run.json, and one part per planned chunk."""

    layout: OutputLayout
    manifest: Manifest
    run_info: dict[str, Any]

    @property
    def root(self) -> StoragePath:
        return self.layout.root

    @property
    def parts(self) -> list[StoragePath]:
        return [self.layout.part(chunk.chunk_id) for chunk in self.manifest.chunks]

    @property
    def columns(self) -> list[str]:
        return list(parquet_files.scan(self.parts[:1]).collect_schema().names())

    def scan_scores(self, *columns: str) -> pl.LazyFrame:
        """The scored rows (every part); query_id and doc_id as strings, the one id type qrels and TREC files know."""
        frame = parquet_files.scan(self.parts)
        if columns:
            frame = frame.select(columns)
        ids = [c for c in ("query_id", "doc_id") if not columns or c in columns]
        return frame.with_columns(pl.col(c).cast(pl.String) for c in ids)

    @property
    def rows(self) -> int:
        return sum(chunk.num_rows for chunk in self.manifest.chunks)

    def part_batches(self, max_rows: int | None = None) -> Iterator[list[StoragePath]]:
        """The parts in plan order, in batches of at most `max_rows` (default BATCH_ROWS) planned rows (a bigger
        chunk alone): what a step that must not hold the whole output reads at a time. A query's rows are all in
        one part."""
        max_rows = max_rows or BATCH_ROWS
        batch: list[StoragePath] = []
        rows = 0
        for chunk in self.manifest.chunks:
            if batch and rows + chunk.num_rows > max_rows:
                yield batch
                batch, rows = [], 0
            batch.append(self.layout.part(chunk.chunk_id))
            rows += chunk.num_rows
        if batch:
            yield batch

    def chunk_stats(self) -> list[ChunkStats]:
        """What each part records about its chunk (from the ledger: no part opened unless the ledger lacks it), in
        the order the chunks finished."""
        done = find_finished(self.layout, self.manifest, repair=False).done
        return sorted((part.stats for part in done.values()), key=lambda s: s.finished_at)


def open_finished(output_dir: str | os.PathLike[str] | StoragePath) -> FinishedOutput:
    """Check that OUTPUT_DIR holds a finished batchrank job; partial results would give misleading metrics."""
    layout = OutputLayout(output_dir)
    with storage.reaching(layout.root):  # a missing bucket or no credentials: one clear line
        manifest = read_manifest(layout)
        if manifest is None:
            layout.root.check_bucket()
            raise CheckpointError(f"{layout.root}: no job.json here; not a batchrank output directory (or not started)")
        if not layout.success.exists():
            raise CheckpointError(f"{layout.root}: the job has not finished (no _SUCCESS); run it to the end first")
        try:
            run_info = json.loads(layout.run_info.read_text())
        except (OSError, ValueError) as error:
            raise CheckpointError(f"{layout.run_info}: unreadable ({error})") from None
    if not manifest.chunks:
        raise CheckpointError(f"{layout.scores}: no parts")
    return FinishedOutput(layout, manifest, run_info)
