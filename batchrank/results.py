"""A finished job's output directory, read back for evaluation, export and the report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from batchrank import storage
from batchrank.errors import CheckpointError
from batchrank.io import parquet_files
from batchrank.io.parts import ChunkStats, read_part_stats
from batchrank.storage import Location, ObjectPath


@dataclass(frozen=True)
class FinishedOutput:
    """OUTPUT/ of a job that wrote _SUCCESS: its parts, run.json and job.json."""

    root: Location
    run_info: dict[str, Any]
    parts: list[Location]

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

    def chunk_stats(self) -> list[ChunkStats]:
        """What each part's footer records about its chunk, in the order the chunks finished."""
        return sorted((read_part_stats(p) for p in self.parts), key=lambda s: s.finished_at)

    def manifest(self) -> dict[str, Any]:
        try:
            return json.loads((self.root / "job.json").read_text())
        except (OSError, ValueError):
            return {}


def open_finished(output_dir: str | Path | ObjectPath) -> FinishedOutput:
    """Check that OUTPUT_DIR holds a finished batchrank job; partial results would give misleading metrics."""
    root = storage.as_location(output_dir)
    with storage.reaching(root):  # a missing bucket or no credentials: one clear line
        return _open_finished(root)


def _open_finished(root: Location) -> FinishedOutput:
    if not (root / "job.json").exists():
        storage.require_bucket(root)
        raise CheckpointError(f"{root}: no job.json here; not a batchrank output directory (or not started)")
    if not (root / "_SUCCESS").exists():
        raise CheckpointError(f"{root}: the job has not finished (no _SUCCESS); run it to the end first")
    try:
        run_info = json.loads((root / "run.json").read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{root / 'run.json'}: unreadable ({error})") from None
    parts = sorted((root / "scores").glob("part-*.parquet"))
    if not parts:
        raise CheckpointError(f"{root / 'scores'}: no part-*.parquet files")
    return FinishedOutput(root, run_info, parts)
