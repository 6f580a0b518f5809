"""A finished job's ranking as a TREC run file (`qid Q0 docid rank score tag`) or JSON lines, by query then rank."""

from __future__ import annotations

import os
import re
from typing import BinaryIO, Literal

import polars as pl

from batchrank.errors import InputDataError
from batchrank.io import parquet_files
from batchrank.results import open_finished
from batchrank.storage import StoragePath

ExportFormat = Literal["trec", "jsonl"]
_WHITESPACE = re.compile(r"\s")


def ranked_rows(output_dir: str | os.PathLike[str] | StoragePath, top: int | None = None) -> pl.DataFrame:
    """Every scored row (or each query's best `top`), sorted by query id then rank."""
    out = open_finished(output_dir)
    # Sort on the ids' own type (numbers numerically), then rank; the ids stay as the output has them.
    frame = parquet_files.scan(out.parts)
    if top is not None:
        frame = frame.filter(pl.col("rank") <= top)
    return frame.sort("query_id", "rank").collect()


def check_tag(tag: str) -> None:
    if not tag or _WHITESPACE.search(tag):
        raise InputDataError(f"--tag {tag!r}: a TREC run tag is one non-empty word without whitespace")


def write_trec(frame: pl.DataFrame, sink: BinaryIO, tag: str) -> None:
    """TREC run lines; trec_eval splits on whitespace, so ids and the tag must not contain any."""
    check_tag(tag)
    lines = frame.select(
        pl.col("query_id").cast(pl.String),
        pl.lit("Q0").alias("q0"),
        pl.col("doc_id").cast(pl.String),
        pl.col("rank"),
        pl.col("score"),
        pl.lit(tag).alias("tag"),
    )
    for column in ("query_id", "doc_id"):
        bad = lines.filter(pl.col(column).str.contains(r"\s") | (pl.col(column) == ""))
        if bad.height:
            raise InputDataError(
                f"{column} {bad[column][0]!r} is empty or contains whitespace, which a TREC run file cannot hold; "
                "export --format jsonl instead"
            )
    lines.write_csv(sink, separator=" ", include_header=False, quote_style="never")


def write_jsonl(frame: pl.DataFrame, sink: BinaryIO) -> None:
    """One JSON object per row: query_id, doc_id, score, rank and the kept columns, ids in their own type."""
    frame.write_ndjson(sink)


def export(output_dir: str | os.PathLike[str] | StoragePath, fmt: ExportFormat, sink: BinaryIO, top: int | None = None, tag: str = "batchrank"
           ) -> int:
    """Write the ranking of OUTPUT_DIR to `sink`; returns the number of rows written."""
    if fmt == "trec":
        check_tag(tag)  # before reading millions of rows
    frame = ranked_rows(output_dir, top)
    if fmt == "trec":
        write_trec(frame, sink, tag)
    else:
        write_jsonl(frame, sink)
    return frame.height


def export_to_path(output_dir: str | os.PathLike[str] | StoragePath, fmt: ExportFormat,
                   destination: str | os.PathLike[str] | StoragePath, top: int | None = None,
                   tag: str = "batchrank") -> int:
    """Like export(), into a file written atomically (local or an object): a failed export leaves no half-written
    file."""
    with StoragePath.of(destination).atomic_writer() as sink:
        return export(output_dir, fmt, sink, top, tag)
