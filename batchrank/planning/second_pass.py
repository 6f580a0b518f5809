"""The second pass over the input, only when the row pass found a repeated pair hash or a query too long: the ids
(and, for queries too long, the query texts) are read again, batch by batch, beside the row checks' run of the
reject stream (the rows already rejected).

- A row of a too-long query with its long text (too_long.py) is rejected into the run "queries too long".
- Rows whose pair hash repeats are spilled with their real ids and confirmed partition by partition afterwards
  (duplicates.py), so a hash collision never rejects a good row; only rows no other check rejected may be the
  copy that is scored, so duplicates are found among the rows left.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from batchrank.io.batches import input_batches
from batchrank.io.input import InputFiles
from batchrank.io.rejects import TOO_LONG_REASON
from batchrank.planning.duplicates import CandidateSpill, Repeated, pair_hash
from batchrank.planning.memory import PlanMemory
from batchrank.planning.reject_stream import RejectRun, RejectStream, RowCursor, decisions
from batchrank.planning.row_checks import CheckTally, FirstRow
from batchrank.planning.too_long import mark_too_long

TOO_LONG_RUN = "queries too long"


@dataclass
class SecondPass:
    duplicate: FirstRow | None  # the first later copy of a repeated pair, and how many later copies
    too_long: FirstRow | None  # the first too-long row, and how many


def second_pass(files: InputFiles, scratch: Path, stream: RejectStream, row_checks: RejectRun, repeated: Repeated,
                long: pl.DataFrame, hash_bits: int, memory: PlanMemory) -> SecondPass:
    """Emit the too-long rows and the confirmed duplicates into `stream`, each check into a run of its own."""
    candidates = None
    if repeated.rows:
        candidates = CandidateSpill(scratch / "candidates", repeated.hashes, repeated.rows, memory.hash_partition_pairs)
    rejected_so_far = RowCursor(row_checks.rows_in_order())
    too_long_run = stream.run(TOO_LONG_RUN, share=0.25)
    columns: list[pl.Expr | str] = ["query_id", "doc_id"]
    columns += ["query"] if long.height else []
    columns += [pair_hash(hash_bits).alias("_hash")] if candidates is not None else []
    tally = CheckTally()
    for offset, batch in input_batches(files, columns, memory.batch_bytes):
        kept = pl.Series(~rejected_so_far.mask(offset, batch.height))
        too_long = mark_too_long(batch, long, kept)
        count = int(too_long.sum())
        if count:
            tally.note(TOO_LONG_REASON, offset, batch, too_long, count)
            too_long_run.emit(decisions(batch, offset, too_long, TOO_LONG_REASON))
        if candidates is not None:
            candidates.add(offset, batch, batch["_hash"], kept & ~too_long)
    too_long_run.finish()
    duplicate = candidates.confirm(stream) if candidates is not None else None
    return SecondPass(duplicate, tally.found.get(TOO_LONG_REASON))
