"""Output directories as a job leaves them part by part (no engine): parts written with write_part, job.json through
output.manifest, and the ledger as the driver writes it (PartLedger.record per part); plus a counter of the part
footers a check opens."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from batchrank.io import parquet_files
from batchrank.io.parts import ChunkStats, PartWritten, rank_within_queries, write_part
from batchrank.io.rejects import REJECTS_COLUMNS, write_rejects
from batchrank.output.layout import OutputLayout
from batchrank.output.ledger import PartLedger
from batchrank.output.manifest import Manifest, write_manifest
from batchrank.plan import Chunk

ROWS = 6  # rows per chunk: two queries of three


def write_chunk_part(layout: OutputLayout, chunk: Chunk, rejected: int = 0) -> PartWritten:
    """The part of `chunk` as ChunkWriter writes it (its last `rejected` rows in a rejects piece)."""
    ids = [f"q{chunk.chunk_id}-{i // 3}" for i in range(chunk.num_rows)]
    docs = [f"d{chunk.chunk_id}-{i}" for i in range(chunk.num_rows)]
    scored = chunk.num_rows - rejected
    frame = pl.DataFrame({"query_id": ids[:scored], "doc_id": docs[:scored],
                          "score": [0.1 * i for i in range(scored)]})
    rejects_bytes = 0
    if rejected:
        pieces = pl.DataFrame({"query_id": ids[scored:], "doc_id": docs[scored:], "reason": ["too long"] * rejected,
                               "file": ["in.parquet"] * rejected, "row": list(range(scored, chunk.num_rows))})
        rejects_bytes = write_rejects(pieces.select(REJECTS_COLUMNS), layout.chunk_rejects(chunk.chunk_id))
    stats = ChunkStats(chunk.chunk_id, scored, 10 * scored, 0, 0.5, time.time(), rejected, "worker-0")
    path = layout.part(chunk.chunk_id)
    size = write_part(rank_within_queries(frame), path, stats)
    return PartWritten(stats, size, rejects_bytes, path.info().mtime_ns)


def fabricate(root: Path | str, chunks: int, recorded: int | None = None, rejected: dict[int, int] | None = None,
              batch_parts: int = 4, monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[OutputLayout, Manifest]:
    """An output whose `chunks` parts are all written and the first `recorded` (all by default) in the ledger, in
    batches of `batch_parts` (as a run killed after its last batch leaves it)."""
    layout = OutputLayout(root)
    plan = [Chunk(i, i * ROWS, ROWS) for i in range(chunks)]
    manifest = Manifest({"input.files": []}, plan, chunks * ROWS, None, queries=2 * chunks)
    write_manifest(layout, manifest)
    if monkeypatch is not None:
        monkeypatch.setattr("batchrank.output.ledger.LEDGER_BATCH_PARTS", batch_parts)
    ledger = PartLedger(layout)
    for chunk in plan:
        part = write_chunk_part(layout, chunk, (rejected or {}).get(chunk.chunk_id, 0))
        if recorded is None or chunk.chunk_id < recorded:
            ledger.record(part)
    ledger.flush()
    return layout, manifest


class FooterReads:
    """Counts the footers read through batchrank.io.parquet_files (every part a check opens)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.paths: list[str] = []
        read_footer = parquet_files.read_footer

        def counting(path: Any) -> Any:
            self.paths.append(str(path))
            return read_footer(path)

        monkeypatch.setattr(parquet_files, "read_footer", counting)

    @property
    def parts(self) -> int:
        return sum(1 for path in self.paths if "/scores/" in path)
