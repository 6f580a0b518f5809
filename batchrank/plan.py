"""Cut the pairs into chunks of whole queries, and fingerprint what the job's results depend on.

A chunk is a contiguous run of rows of whole queries (a query larger than `chunk_size` is one chunk of its own),
so ranks are computed inside a part and each query's prompt prefix is shared inside one engine call. Inputs whose
queries are not contiguous are first staged as a copy grouped by query.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from batchrank import storage
from batchrank.io.input import InputFiles
from batchrank.spec import JobSpec
from batchrank.storage import Location, ObjectPath


@dataclass(frozen=True)
class Chunk:
    chunk_id: int
    start: int  # first row in the planned row order
    num_rows: int

    @property
    def part_name(self) -> str:
        return f"part-{self.chunk_id:06d}.parquet"


def queries_are_contiguous(index: pl.DataFrame) -> bool:
    runs = index.group_by("query_id").agg(
        pl.col("row").min().alias("first"), pl.col("row").max().alias("last"), pl.len().alias("n")
    )
    return bool((runs["last"] - runs["first"] + 1 == runs["n"]).all())


def query_sizes_in_order(index: pl.DataFrame) -> list[int]:
    """Rows per query, queries in order of first appearance (the index must be grouped by query)."""
    runs = index.group_by("query_id", maintain_order=True).agg(pl.len().alias("n"))
    return runs["n"].to_list()


def cut_chunks(query_sizes: list[int], chunk_size: int) -> list[Chunk]:
    """Pack whole queries greedily into chunks of at most `chunk_size` rows (a bigger query stands alone)."""
    chunks: list[Chunk] = []
    start, rows = 0, 0
    for size in query_sizes:
        if rows and rows + size > chunk_size:
            chunks.append(Chunk(len(chunks), start, rows))
            start, rows = start + rows, 0
        rows += size
    if rows:
        chunks.append(Chunk(len(chunks), start, rows))
    return chunks


SOURCE_ROW = "__batchrank_source_row"  # a staged row's global row number in the input (names file and row)
# Row groups of a staged copy in an object store: a chunk is read by its row groups, so smaller ones cost less.
STAGED_ROW_GROUP_ROWS = 10_000


def stage_grouped_copy(pairs: pl.LazyFrame, destination: Location, exclude_rows: pl.Series | None = None) -> Location:
    """Write the input grouped by query (queries in order of first appearance, rows in input order).

    Rows whose global row number is in `exclude_rows` (rejected under `input.on_bad_rows: skip`) are left out, so
    every planned row is scored exactly once. Each staged row keeps its input row number in SOURCE_ROW.

    An object-store destination is sorted into a local temporary file (polars spills a big sort to disk there),
    then uploaded in one piece.
    """
    staged = pairs.with_row_index(SOURCE_ROW)
    if exclude_rows is not None and len(exclude_rows):
        staged = staged.filter(~pl.col(SOURCE_ROW).cast(pl.Int64).is_in(exclude_rows.cast(pl.Int64).implode()))
    grouped = (
        staged.with_columns(pl.col(SOURCE_ROW).min().over("query_id").alias("_first"))
        .sort(["_first", SOURCE_ROW])
        .drop("_first")
    )
    if isinstance(destination, ObjectPath):
        with tempfile.TemporaryDirectory(prefix="batchrank-staging-") as scratch:
            local = Path(scratch) / destination.name
            grouped.sink_parquet(local, row_group_size=STAGED_ROW_GROUP_ROWS)
            storage.upload_file(local, destination)
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(destination.name + ".tmp")
    grouped.sink_parquet(temporary)
    temporary.replace(destination)
    return destination


def _model_signature(model_path: str) -> dict[str, object]:
    root = Path(model_path)
    signature: dict[str, object] = {}
    config = root / "config.json"
    if config.is_file():
        signature["config_sha256"] = hashlib.sha256(config.read_bytes()).hexdigest()
    signature["files"] = sorted(
        [p.name, p.stat().st_size] for p in root.glob("*") if p.suffix in (".safetensors", ".bin", ".json")
    )
    return signature


def job_fingerprint(spec: JobSpec, files: InputFiles) -> dict[str, object]:
    """What the results depend on: input files, result-relevant settings, the model's files.

    Input files are identified by path, size and modification time (an object: URI, size and last-modified time):
    hashing terabytes of text on every start would cost more than the job.
    """
    inputs = storage.file_signatures(files.paths)
    return {"inputs": inputs, "spec": spec.results_fingerprint(), "model": _model_signature(spec.model.path)}
