"""A finished job's ranking as a TREC run file (`qid Q0 docid rank score tag`) or JSON lines, by query then rank.

Parts hold whole queries in plan order, not in id order, so the ranking is sorted as an external merge sort: each
batch of parts (results.BATCH_ROWS rows) is sorted by query id then rank into a run file in a local temporary
directory (TMPDIR; about the size of the output's Parquet), and the runs are merged as they are written out. A
query's rows are all in one run, so merging on the query id alone keeps each query's rows in rank order. Memory
follows one batch and the runs being merged (MERGE_WIDTH at a time, a few tens of MiB each), not the output.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Literal

import polars as pl

from batchrank.errors import InputDataError
from batchrank.io import parquet_files
from batchrank.io.trec_ids import UnsafeIdTally
from batchrank.results import FinishedOutput, open_finished
from batchrank.storage import StoragePath
from batchrank.ties import rank_order_scores

ExportFormat = Literal["trec", "jsonl"]
MERGE_WIDTH = 16  # runs merged at once (polars buffers each run it merges)
_WHITESPACE = re.compile(r"\s")


def ranked_rows(output_dir: str | os.PathLike[str] | StoragePath, top: int | None = None) -> pl.DataFrame:
    """Every scored row (or each query's best `top`), sorted by query id then rank, in memory (a small output)."""
    out = open_finished(output_dir)
    with ranked_batches(out, top) as batches:
        frames = list(batches)
    return pl.concat(frames) if frames else parquet_files.scan(out.parts[:1]).head(0).collect()


@contextmanager
def ranked_batches(out: FinishedOutput, top: int | None = None, fmt: ExportFormat | None = None
                   ) -> Iterator[Iterator[pl.DataFrame]]:
    """The ranking in batches, sorted by query id (in the ids' own type: numbers numerically) then rank. With
    fmt "trec", every id is checked before the first batch is handed out, so a bad id writes nothing, and the
    error counts them all; and the scores strictly decrease in rank order (ties.rank_order_scores)."""
    with tempfile.TemporaryDirectory(prefix="batchrank-export-") as scratch:
        runs = _sorted_runs(out, top, fmt, Path(scratch))
        while len(runs) > MERGE_WIDTH:  # a few runs at a time: each level rewrites the ranking once
            runs = [_merge_to_file(runs[i : i + MERGE_WIDTH], Path(scratch) / f"merged-{len(runs)}-{i}.parquet")
                    for i in range(0, len(runs), MERGE_WIDTH)]
        yield _merged(runs).collect_batches() if runs else iter(())


def _sorted_runs(out: FinishedOutput, top: int | None, fmt: ExportFormat | None, scratch: Path) -> list[Path]:
    runs, unsafe = [], UnsafeIdTally()
    for number, batch in enumerate(out.part_batches()):
        frame = parquet_files.scan(batch)
        if top is not None:
            frame = frame.filter(pl.col("rank") <= top)
        rows = frame.sort("query_id", "rank").collect()
        if fmt == "trec":
            unsafe.add(0, rows)
            # Here, where each query is whole (the merged batches written out may split one).
            rows = rows.with_columns(rank_order_scores(rows))
        if rows.height and not unsafe.found:  # once one id is bad, only the count goes on
            runs.append(scratch / f"run-{number:06d}.parquet")
            rows.write_parquet(runs[-1])
    if unsafe.found:
        raise InputDataError(
            f"{unsafe.rows} rows hold ids that a TREC run file cannot hold (empty, or with whitespace or control "
            f"characters: trec_eval splits its lines on whitespace): {unsafe.describe()}; export --format jsonl "
            "instead, or clean the ids in the job's input"
        )
    return runs


def _merged(runs: list[Path]) -> pl.LazyFrame:
    frames = [pl.scan_parquet(run) for run in runs]
    return functools.reduce(lambda left, right: left.merge_sorted(right, key="query_id"), frames)


def _merge_to_file(runs: list[Path], destination: Path) -> Path:
    _merged(runs).sink_parquet(destination)
    for run in runs:
        run.unlink()
    return destination


def check_tag(tag: str) -> None:
    if not tag or _WHITESPACE.search(tag):
        raise InputDataError(f"--tag {tag!r}: a TREC run tag is one non-empty word without whitespace")


def write_trec(frame: pl.DataFrame, sink: BinaryIO, tag: str) -> None:
    """TREC run lines of whole queries sorted by rank. The tag (check_tag) and the ids (in ranked_batches) were
    checked before the first line was written: trec_eval splits on whitespace, so none may contain any. The
    scores are those of ties.rank_order_scores (ranked_batches): tied ones an ulp apart in rank order, so that an
    evaluator that re-sorts by score reads the rank column's order, the one `batchrank eval` measures."""
    lines = frame.select(
        pl.col("query_id").cast(pl.String),
        pl.lit("Q0").alias("q0"),
        pl.col("doc_id").cast(pl.String),
        pl.col("rank"),
        pl.col("score"),
        pl.lit(tag).alias("tag"),
    )
    lines.write_csv(sink, separator=" ", include_header=False, quote_style="never")


def write_jsonl(frame: pl.DataFrame, sink: BinaryIO) -> None:
    """One JSON object per row: query_id, doc_id, score, rank and the kept columns, ids in their own type."""
    frame.write_ndjson(sink)


def export(output_dir: str | os.PathLike[str] | StoragePath, fmt: ExportFormat, sink: BinaryIO,
           top: int | None = None, tag: str = "batchrank") -> int:
    """Write the ranking of OUTPUT_DIR to `sink` as it is merged; returns the number of rows written."""
    if fmt == "trec":
        check_tag(tag)  # before reading millions of rows
    rows = 0
    with ranked_batches(open_finished(output_dir), top, fmt) as batches:
        for frame in batches:
            if fmt == "trec":
                write_trec(frame, sink, tag)
            else:
                write_jsonl(frame, sink)
            rows += frame.height
    return rows


def export_to_path(output_dir: str | os.PathLike[str] | StoragePath, fmt: ExportFormat,
                   destination: str | os.PathLike[str] | StoragePath, top: int | None = None,
                   tag: str = "batchrank") -> int:
    """Like export(), into a file (local or an object) that appears whole or not at all: written to a local file
    first (beside it, or in TMPDIR for an object, then uploaded in one streamed upload), so that neither a failed
    export nor a big one leaves half a file or holds the file in memory."""
    with StoragePath.of(destination).local_staging_file() as local, open(local, "wb") as sink:
        return export(output_dir, fmt, sink, top, tag)
