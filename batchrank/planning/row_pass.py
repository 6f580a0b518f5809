"""The row pass: every row of the input read once, in batches. Each batch's row checks (row_checks.py) tally the
problems and emit the failing rows into the reject stream's run "row checks"; the text lengths go into histograms;
the rows that pass gather the per-query facts (query_facts.py) and have their ids checked for what a TREC run cannot
hold (io/trec_ids.py: a warning, not a reject); and a hash of every pair is spilled to local disk to find repeated
pairs afterwards (duplicates.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from batchrank.io.batches import input_batches
from batchrank.io.input import InputFiles
from batchrank.io.trec_ids import UnsafeIdTally
from batchrank.planning.duplicates import HashSpill, Repeated, pair_hash
from batchrank.planning.memory import PlanMemory
from batchrank.planning.query_facts import QueryFactsBuilder
from batchrank.planning.reject_stream import RejectRun, decisions
from batchrank.planning.row_checks import CheckTally, LengthHistogram, check_columns, reason_column

ROW_CHECKS_RUN = "row checks"


@dataclass
class RowPass:
    rows: int
    tally: CheckTally
    query_chars: LengthHistogram
    doc_chars: LengthHistogram
    facts: pl.DataFrame  # query_id, rows, first, last, text: over rows passing the row checks, in first-row order
    queries: int  # distinct query_id values of every row
    repeated: Repeated  # pair hashes seen more than once
    unsafe_ids: UnsafeIdTally  # ids a TREC run cannot hold, among the rows that pass the row checks


def row_pass(files: InputFiles, scratch: Path, run: RejectRun, hash_bits: int, memory: PlanMemory) -> RowPass:
    """Read every row once; the rows failing a row check go to `run` (finished here)."""
    tally, query_chars, doc_chars, unsafe_ids = CheckTally(), LengthHistogram(), LengthHistogram(), UnsafeIdTally()
    facts = QueryFactsBuilder(files.schema[files.spec.column("query_id")], memory.batch_bytes)
    hashes = HashSpill(scratch / "hashes", sum(files.num_rows), memory.hash_partition_pairs)
    columns = ["query_id", "doc_id", "query", *check_columns(), pair_hash(hash_bits).alias("_hash")]
    rows = 0
    for offset, batch in input_batches(files, columns, memory.batch_bytes):
        bad = tally.add(offset, batch)
        unsafe_ids.add(offset, batch, ~bad)
        query_chars.add(batch["_query_chars"])
        doc_chars.add(batch["_doc_chars"])
        facts.add(offset, batch, bad)
        hashes.add(batch["_hash"].to_numpy())
        if bad.any():
            run.emit(decisions(batch, offset, bad, reason_column()))
        rows = offset + batch.height
    run.finish()
    merged, queries = facts.finish()
    return RowPass(rows, tally, query_chars, doc_chars, merged, queries, hashes.repeated(), unsafe_ids)
