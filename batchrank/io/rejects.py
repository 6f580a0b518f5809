"""Rows that are not scored under `input.on_bad_rows: skip`, and where each one is recorded.

Rows found bad before scoring (nulls, blanks, repeats, a query too long for max_model_len) go to
OUTPUT/rejects/plan.parquet, written before job.json; rows of a chunk found bad while it is prepared (a query the
plan did not find too long: another text of the same query_id, a checkpoint planned before this check) go to
OUTPUT/rejects/part-N, written before that chunk's scores part. At the end every piece is merged into
OUTPUT/rejects.parquet, so each rejected row is in exactly one piece, whatever kills and resumes happened.
"""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from batchrank.errors import CheckpointError, RunFailure
from batchrank.io import parquet_files
from batchrank.io.input import InputFiles
from batchrank.io.parts import write_table
from batchrank.storage import StoragePath

REJECTS_COLUMNS = ("query_id", "doc_id", "reason", "file", "row")
REJECTS_SCHEMA_EXTRA = {"reason": pl.String, "file": pl.String, "row": pl.Int64}
DUPLICATE_REASON = "duplicate (query_id, doc_id) pair"
# Every kind: a qwen3 prompt's fixed text holds the instruction, a pair's the special tokens, an embedding's the prefix.
TOO_LONG_REASON = "the query alone, with the prompt's fixed text, does not fit model.max_model_len"


def summarize_reasons(reasons: pl.Series) -> str:
    """'3 document is empty, 1 duplicate (query_id, doc_id) pair', most frequent first."""
    counts = reasons.drop_nulls().alias("reason").value_counts(name="n").sort(["n", "reason"], descending=[True, False])
    return ", ".join(f"{n} {reason}" for reason, n in counts.iter_rows())


def summarize_counts(counts: dict[str, int]) -> str:
    """The same summary from counts per reason."""
    ordered = sorted(((n, reason) for reason, n in counts.items() if n), key=lambda item: (-item[0], item[1]))
    return ", ".join(f"{n} {reason}" for n, reason in ordered)


def too_long_rejects(frame: pl.DataFrame, mask: pl.Series, input_rows: pl.Series | None,
                     files: InputFiles) -> pl.DataFrame:
    """The rows of a chunk whose query does not fit, as rejects (file and row null for a staged copy that predates
    the source row column)."""
    rejected = frame.filter(mask).select("query_id", "doc_id").with_columns(reason=pl.lit(TOO_LONG_REASON))
    if input_rows is None:
        located = pl.DataFrame({"file": [None] * rejected.height, "row": [None] * rejected.height},
                               schema={"file": pl.String, "row": pl.Int64})
    else:
        located = files.locate_many(input_rows.filter(mask))
    return pl.concat([rejected, located], how="horizontal").select(REJECTS_COLUMNS)


def write_rejects(frame: pl.DataFrame, path: StoragePath) -> int:
    """Write a rejects piece atomically; returns its size in bytes."""
    try:
        return write_table(frame, path)
    except OSError as error:
        raise RunFailure(f"{path}: cannot write the rejected rows: {error}") from error


def check_plan_rejects(path: StoragePath, planned: int) -> None:
    """The rows rejected before scoring are all in `path` (written before job.json, so only damage from outside
    the job can spoil it)."""
    try:
        rows = parquet_files.read_metadata(path).num_rows
    except Exception as error:  # noqa: BLE001 - missing or unreadable: the same answer
        rows, why = -1, f"unreadable: {error}"
    else:
        why = f"{rows} rows, the plan says {planned}"
    if rows != planned:
        raise CheckpointError(f"{path}: the rows rejected before scoring are damaged ({why}); "
                              "rerun with --overwrite to start over")


def merge_rejects(files: InputFiles, pieces: list[StoragePath], destination: StoragePath) -> pl.DataFrame:
    """OUTPUT/rejects.parquet from its pieces, in the order given (plan first, then chunk by chunk), streamed
    piece by piece into one file; returns the count of rows per reason, most frequent first."""
    ids = {"query_id": files.schema[files.spec.column("query_id")], "doc_id": files.schema[files.spec.column("doc_id")]}
    schema = {**ids, **REJECTS_SCHEMA_EXTRA}
    counts = [pl.DataFrame(schema={"reason": pl.String, "n": pl.UInt32})]
    try:
        with destination.atomic_writer() as handle:
            writer = pq.ParquetWriter(handle, pl.DataFrame(schema=schema).to_arrow().schema, compression="zstd")
            for piece in pieces:
                for frame in _read_piece(piece):
                    frame = frame.cast(schema)  # type: ignore[arg-type]
                    writer.write_table(frame.to_arrow())
                    counts.append(frame["reason"].value_counts(name="n"))
            writer.close()
    except OSError as error:
        raise RunFailure(f"{destination}: cannot write: {error}") from error
    merged = pl.concat(counts).group_by("reason").agg(pl.col("n").sum())
    return merged.sort(["n", "reason"], descending=[True, False])


def _read_piece(piece: StoragePath) -> Iterator[pl.DataFrame]:
    """A rejects piece a row group at a time (the plan's piece may hold millions of rows)."""
    try:
        with piece.open_input_file() as handle:
            parquet = pq.ParquetFile(handle)
            for group in range(parquet.num_row_groups):
                frame = pl.from_arrow(parquet.read_row_group(group, columns=list(REJECTS_COLUMNS)))
                assert isinstance(frame, pl.DataFrame)
                yield frame
    except (OSError, ValueError, KeyError, pa.ArrowException, pl.exceptions.PolarsError) as error:
        raise CheckpointError(f"{piece}: the rejected rows of the checkpoint are damaged ({error}); "
                              "rerun with --overwrite") from None
