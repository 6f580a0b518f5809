"""The memory the plan keeps to, from the two settings that set it (README: "How much memory validate and the plan
take"): `run.plan_read_mib` for reading the input and the work on each batch, `run.staging_sort_mib` for sorting
one bucket of a grouped copy. Besides these, the driver holds its interpreter and libraries and the per-query facts
(about 3 x (100 bytes + the query's text) per distinct query while they merge)."""

from __future__ import annotations

from dataclasses import dataclass

from batchrank.spec import RunSpec

# Batch-sized buffers the plan's work holds at once, with a margin: the decoded batch, its polars frame and derived
# columns, what the allocators keep of the batches before it (~8 batches measured at 40M pairs), and staging's
# spill (the batch joined to its query's rank, the rows kept, their order by bucket, the Arrow copy written, two
# writes queued). docs/perf-notes.md, entry 35.
BUFFERS_PER_BATCH = 16
SPILL_WRITES_QUEUED = 2
DECISION_BYTES = 128  # a rejected row (input row, ids, reason) while the reject stream's runs are merged


@dataclass(frozen=True)
class PlanMemory:
    read_bytes: int = 256 << 20
    sort_bytes: int = 1024 << 20

    @classmethod
    def of(cls, run: RunSpec) -> PlanMemory:
        return cls(run.plan_read_mib << 20, run.staging_sort_mib << 20)

    @property
    def batch_bytes(self) -> int:
        """Decoded input rows per batch read (io/batches.py)."""
        return max(1, self.read_bytes // BUFFERS_PER_BATCH)

    @property
    def hash_partition_pairs(self) -> int:
        """Pair hashes checked at once: 8 bytes each, read and sorted (numpy's radix sort takes as much again) in
        an eighth of the allowance, about a quarter with the sort."""
        return max(1, self.read_bytes // 64)

    @property
    def merge_rows(self) -> int:
        """Rejected rows held while the reject stream's runs are merged."""
        return max(1, self.batch_bytes // DECISION_BYTES)
