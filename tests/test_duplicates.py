"""planning/duplicates.py: pair hashes spilled to partition files find every repeated hash, and the candidates are
confirmed on their real ids, so colliding hashes of different pairs are no duplicates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

import batchrank.planning.duplicates as duplicates
from batchrank.io.rejects import DUPLICATE_REASON
from batchrank.planning.duplicates import CandidateSpill, HashSpill, pair_hash, partition_count
from batchrank.planning.reject_stream import RejectStream


def test_partitions_are_powers_of_two_that_fit_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    assert partition_count(1) == 1 and partition_count(duplicates.PARTITION_PAIRS) == 1
    assert partition_count(duplicates.PARTITION_PAIRS + 1) == 2 and partition_count(10**9) == 128
    monkeypatch.setattr(duplicates, "PARTITION_PAIRS", 10)
    assert partition_count(1000) == 128


def test_every_repeated_hash_is_found_across_partitions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(duplicates, "PARTITION_PAIRS", 1000)  # 128 partitions for 100k hashes
    rng = np.random.default_rng(0)
    hashes = rng.permutation(np.unique(rng.integers(0, 2**64 - 1, 100_000, dtype=np.uint64)))
    planted = np.sort(rng.choice(hashes, 50, replace=False))
    spill = HashSpill(tmp_path / "hashes", len(hashes) + 50)
    assert spill.partitions == 128
    for batch in np.array_split(np.concatenate([hashes, planted]), 7):
        spill.add(batch)
    repeated = spill.repeated()
    assert np.array_equal(repeated.hashes, planted)
    assert repeated.rows == 100, "each planted hash is on two rows"
    assert not list((tmp_path / "hashes").iterdir()), "each partition file is removed once checked"


def test_colliding_hashes_of_different_pairs_are_not_duplicates(tmp_path: Path) -> None:
    frame = pl.DataFrame({"query_id": ["a", "a", "b", "a", "b", "a"], "doc_id": ["1", "2", "1", "1", "1", "1"]})
    hashes = frame.select(pair_hash(bits=1))[:, 0]  # one bit: everything collides with something
    repeated = np.unique(hashes.to_numpy())
    candidates = CandidateSpill(tmp_path / "candidates", repeated, frame.height)
    eligible = pl.Series([True, True, True, False, True, True])  # row 3 fails a row check
    candidates.add(0, frame[:4], hashes[:4], eligible[:4])
    candidates.add(4, frame[4:], hashes[4:], eligible[4:])
    stream = RejectStream(tmp_path / "rejects")
    first = candidates.confirm(stream)
    stream.close()
    # every later copy is a problem (row 3 too, though it fails another check) ...
    assert first is not None and (first.row, first.query_id, first.doc_id) == (3, "a", "1")
    assert first.count == 3
    # ... and of the copies that pass the other checks, all but the first are rejected as duplicates
    merged = pl.concat(list(stream.merged()))
    assert merged.rows() == [(4, "b", "1", DUPLICATE_REASON), (5, "a", "1", DUPLICATE_REASON)]
    assert sorted(merged.group_by("query_id").len().rows()) == [("a", 1), ("b", 1)]
