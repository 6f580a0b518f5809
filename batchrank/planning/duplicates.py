"""Repeated (query_id, doc_id) pairs, found in memory that does not follow the number of pairs.

First pass: a 64-bit hash of every pair is appended to one of N partition files on local disk (by the hash's low
bits), 8 bytes a pair; each partition, sized to fit in memory, is then sorted and its repeated hash values kept.
Second pass: the rows whose hash is one of those are taken with their real ids and spilled by the same partitions;
each partition is checked on the ids themselves, so a hash collision never rejects a good row.

Of a repeated pair, every copy after the first is a duplicate problem (what `validate` and `error` report), and
of the copies that pass the other checks, every one after the first is rejected: the first is scored. Each
partition's rejects are a run of the reject stream of their own ("duplicates, hash partition N").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import polars as pl

from batchrank.io.batches import row_numbers
from batchrank.io.rejects import DUPLICATE_REASON
from batchrank.planning.reject_stream import RejectStream
from batchrank.planning.row_checks import FirstRow
from batchrank.planning.spill import FrameSpill

PAIR_HASH_SEED = 0x62617463  # fixed: both passes must hash a pair alike
PARTITION_PAIRS = 1 << 23  # hashes per partition file (64 MiB) when the partitions are checked, at most
# A candidate row (its ids, input row and flag) takes about as much memory as this many hashes.
CANDIDATE_HASHES = 8


def pair_hash(bits: int = 64) -> pl.Expr:
    """The pair's hash, cut to its low `bits` bits (tests cut it to a few bits to force collisions)."""
    hashed = pl.struct("query_id", "doc_id").hash(PAIR_HASH_SEED)
    return hashed if bits >= 64 else hashed & pl.lit((1 << bits) - 1, dtype=pl.UInt64)


def partition_count(rows: int, per_partition: int | None = None) -> int:
    """A power of two, so that each partition holds about `per_partition` hashes or fewer (PARTITION_PAIRS at
    most)."""
    most = min(PARTITION_PAIRS, per_partition or PARTITION_PAIRS)
    wanted = max(1, -(-rows // most))
    return 1 << (wanted - 1).bit_length()


@dataclass
class Repeated:
    """The pair hashes seen more than once (distinct, sorted) and how many rows carry one of them."""

    hashes: np.ndarray
    rows: int


class HashSpill:
    """Every pair's hash, spilled to partition files; `repeated()` checks them one partition at a time."""

    def __init__(self, directory: Path, rows: int, per_partition: int | None = None):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.partitions = partition_count(rows, per_partition)
        self._files: list[BinaryIO] = [open(self._path(i), "wb") for i in range(self.partitions)]  # noqa: SIM115

    def _path(self, index: int) -> Path:
        return self.directory / f"hashes-{index:05d}.u64"

    def add(self, hashes: np.ndarray) -> None:
        if self.partitions == 1:
            self._files[0].write(hashes.tobytes())
            return
        partition = (hashes & np.uint64(self.partitions - 1)).astype(np.uint16)  # 16 bits: a radix sort
        order = np.argsort(partition, kind="stable")
        grouped = hashes[order]
        ends = np.cumsum(np.bincount(partition, minlength=self.partitions))
        start = 0
        for index, end in enumerate(ends):
            if end > start:
                self._files[index].write(grouped[start:end].tobytes())
            start = int(end)

    def repeated(self) -> Repeated:
        """The hash values that occur more than once; the partition files are removed."""
        for handle in self._files:
            handle.close()
        found, rows = [], 0
        for index in range(self.partitions):
            hashes = np.fromfile(self._path(index), dtype=np.uint64)
            self._path(index).unlink()
            hashes.sort()
            same = hashes[1:] == hashes[:-1]
            if same.any():
                distinct = np.unique(hashes[1:][same])
                found.append(distinct)
                rows += int(same.sum()) + distinct.size  # every copy: the later ones and each first one
        return Repeated(np.sort(np.concatenate(found)) if found else np.zeros(0, dtype=np.uint64), rows)


class CandidateSpill:
    """Second pass: rows whose pair hash is repeated, spilled by hash partition with their real ids; `confirm()`
    checks each partition on the ids."""

    def __init__(self, directory: Path, repeated: np.ndarray, rows: int, per_partition: int | None = None):
        """`rows`: how many rows will be added (Repeated.rows); with `per_partition` (in hashes' room) they set the
        number of partitions."""
        self.repeated = pl.Series("_hash", repeated, dtype=pl.UInt64)
        self.partitions = partition_count(rows * CANDIDATE_HASHES, per_partition)
        self.spill = FrameSpill(directory, self.partitions, "candidates")

    def add(self, offset: int, batch: pl.DataFrame, hashes: pl.Series, eligible: pl.Series) -> None:
        """A batch's rows (query_id, doc_id); `eligible`: a copy that `skip` may score (passes the other checks)."""
        mask = hashes.is_in(self.repeated.implode())
        if not mask.any():
            return
        rows = row_numbers(offset, batch.height)
        frame = pl.DataFrame([rows, batch["query_id"], batch["doc_id"], eligible.alias("eligible")]).filter(mask)
        partition = (hashes.filter(mask).to_numpy() & np.uint64(self.partitions - 1)).astype(np.int64)
        self.spill.append(frame, partition)

    def confirm(self, stream: RejectStream) -> FirstRow | None:
        """Check each partition on the real ids (its rows are in input order) and emit its rejects into a run of
        `stream`; returns the first later copy of any pair, with the count of later copies over every row."""
        self.spill.close()
        first, count = None, 0
        for index in range(self.partitions):
            frame = self.spill.read(index)
            self.spill.remove(index)
            if frame is None:
                continue
            later = frame.filter(~pl.struct("query_id", "doc_id").is_first_distinct())
            count += later.height
            if later.height and (first is None or later["input_row"][0] < first.row):
                first = FirstRow(int(later["input_row"][0]), later["query_id"][0], later["doc_id"][0])
            kept = frame.filter(pl.col("eligible"))
            rejected = kept.filter(~pl.struct("query_id", "doc_id").is_first_distinct())
            if rejected.height:
                run = stream.run(f"duplicates, hash partition {index}", share=0.25 / self.partitions)
                run.emit(rejected.with_columns(reason=pl.lit(DUPLICATE_REASON)))
                run.finish()
        if first is not None:
            first.count = count
        return first
