"""The texts of the rows a pass over a finished output chose, in bounded memory whatever the output's size.

When the output keeps `query` and `document` (output.keep_columns), the chosen rows carry them already and pass
straight through. Otherwise they are joined back from the job's input (unchanged since the run) by each row's
`input_row`, in three steps on local scratch disk (TMPDIR), like the staged copy's external sort:
  1. the chosen rows (ids, scores, input_row: a few per query) are spilled into buckets of ROW_BUCKET input rows;
  2. the input is read once, about TEXT_BATCH_BYTES of it at a time (only its query and document columns), and each
     batch takes the chosen rows that fall in it, read back bucket after bucket in row order; the rows, now with their
     texts, are spilled again into buckets of consecutive queries (about QUERY_BUCKET_ROWS rows each);
  3. the query buckets are read back in order, each sorted by query, role and slot, and handed on.
Memory: one input batch, one row bucket, one query bucket, and a count of chosen rows per query.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import ValidationError

from batchrank.errors import BatchrankError, InputDataError
from batchrank.io.batches import input_batches
from batchrank.io.input import InputFiles, open_input
from batchrank.io.parts import INPUT_ROW
from batchrank.planning.spill import FrameSpill
from batchrank.planning.staging import bucket_of_ranks
from batchrank.results import FinishedOutput
from batchrank.spec import InputSpec

TEXTS = ("query", "document")
ROW_BUCKET = 1 << 22  # input rows per bucket of chosen rows
TEXT_BATCH_BYTES = 32 << 20  # decoded input read at a time (io/batches.py): its texts are the largest thing held
QUERY_BUCKET_ROWS = 1 << 17  # chosen rows (with texts) per query bucket


class TextSource:
    """Where a finished output's texts come from: its own kept columns, or its job's input by input_row."""

    def __init__(self, out: FinishedOutput):
        self.out = out
        columns = out.columns
        self.kept = all(text in columns for text in TEXTS)
        if not self.kept and INPUT_ROW not in columns:
            raise InputDataError(
                f"{out.root}: its parts keep neither the texts (query and document in output.keep_columns) nor "
                f"{INPUT_ROW} (the job was planned by an older batchrank), so the texts cannot be joined back; "
                "rerun the job into a new output.path")
        self.files = None if self.kept else unchanged_input(out)

    @property
    def columns(self) -> list[str]:
        """The columns of the parts a pass must carry along for the texts."""
        return list(TEXTS) if self.kept else [INPUT_ROW]

    def joined(self, chosen: Iterator[pl.DataFrame], scratch: Path) -> Iterator[pl.DataFrame]:
        """The chosen rows (whole queries, in q order) with `query` and `document`, whole queries per frame, in q
        order. Consumes `chosen` to its end before the first frame when the texts come from the input."""
        if self.files is None:
            yield from (frame for frame in chosen if frame.height)
            return
        by_row, sizes = _spill_by_row(chosen, self.files, scratch / "rows")
        by_query = _attach_texts(by_row, self.files, bucket_of_ranks(sizes, QUERY_BUCKET_ROWS), scratch / "queries")
        for index in range(by_query.partitions):
            frame = by_query.read(index)
            by_query.remove(index)
            if frame is not None:
                yield frame.sort("q", "role", "slot")


def unchanged_input(out: FinishedOutput) -> InputFiles:
    """The job's input files, checked to be the ones the run read (each file's size and Parquet footer against
    job.json); InputDataError saying what differs otherwise."""
    keep = "keep query and document in output.keep_columns to carry the texts in the output"
    try:
        spec = InputSpec.model_validate(out.run_info["spec"]["input"])
    except (KeyError, TypeError, ValidationError):
        raise InputDataError(f"{out.layout.run_info}: names no readable input; {keep}") from None
    try:
        files = open_input(spec)
    except BatchrankError as error:
        raise InputDataError(f"the job's input, where the texts are joined from, cannot be read: {error}") from None
    recorded = [entry[1:] for entry in out.manifest.fingerprint.get("input.files", [])]
    if [[f.size, f.footer_sha256] for f in files.files] != recorded:
        raise InputDataError(f"the job's input {spec.path} changed since the run (its files' sizes or Parquet "
                             f"footers differ from {out.layout.manifest}), so input_row no longer names the rows "
                             f"scored; restore it, or {keep} and run the job again")
    return files


def _spill_by_row(chosen: Iterator[pl.DataFrame], files: InputFiles, directory: Path) -> tuple[FrameSpill, np.ndarray]:
    """Step 1: the chosen rows into buckets of input rows; and how many rows each query (by q) chose."""
    total = sum(files.num_rows)
    spill = FrameSpill(directory, max(1, -(-total // ROW_BUCKET)), "rows")
    counts: list[np.ndarray] = []
    for frame in chosen:
        if not frame.height:
            continue
        if frame[INPUT_ROW].null_count():
            raise InputDataError(f"{INPUT_ROW} is missing in some parts (a checkpoint resumed from an older staged "
                                 "copy); keep query and document in output.keep_columns and run the job again")
        spill.append(frame, (frame[INPUT_ROW].to_numpy() // ROW_BUCKET).astype(np.int64))
        per_query = frame.group_by("q").len()
        counts.append(per_query.select("q", "len").to_numpy())
    spill.close()
    pairs = np.concatenate(counts) if counts else np.zeros((0, 2), dtype=np.int64)
    sizes = np.zeros(int(pairs[:, 0].max()) + 1 if len(pairs) else 0, dtype=np.int64)
    np.add.at(sizes, pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64))
    return spill, sizes


def _attach_texts(by_row: FrameSpill, files: InputFiles, bucket_of_query: np.ndarray, directory: Path) -> FrameSpill:
    """Step 2: one pass over the input's texts, merged with the chosen rows in input-row order, into query buckets."""
    partitions = int(bucket_of_query.max()) + 1 if len(bucket_of_query) else 1
    by_query = FrameSpill(directory, partitions, "queries")
    held: pl.DataFrame | None = None
    loaded = 0
    for offset, batch in input_batches(files, list(TEXTS), TEXT_BATCH_BYTES):
        end = offset + batch.height
        while loaded < by_row.partitions and loaded * ROW_BUCKET < end:  # the buckets this batch reaches
            bucket = by_row.read(loaded)
            by_row.remove(loaded)
            loaded += 1
            if bucket is not None:
                bucket = bucket.sort(INPUT_ROW)
                held = bucket if held is None else pl.concat([held, bucket])
        if held is None or not held.height:
            continue
        cut = int(np.searchsorted(held[INPUT_ROW].to_numpy(), end))
        inside, held = held[:cut], held[cut:]
        if inside.height:
            texts = batch[inside[INPUT_ROW].to_numpy() - offset]
            rows = pl.concat([inside, texts], how="horizontal")
            by_query.append(rows, bucket_of_query[rows["q"].to_numpy()])
    by_query.close()
    return by_query
