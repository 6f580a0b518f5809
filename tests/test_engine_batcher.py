"""EngineBatcher: chunks waiting for the engine share one call; each gets its own scores or its own error."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from batchrank.execute.engine_batcher import EngineBatcher
from batchrank.scoring.base import PreparedChunk


class GatedScorer:
    """Scores = payload values; the first engine call waits on a gate so that others queue behind it."""

    def __init__(self, failing_payload: float | None = None):
        self.gate = threading.Event()
        self.calls: list[list[float]] = []
        self.failing_payload = failing_payload

    def _check(self, prepared: PreparedChunk) -> None:
        if prepared.payload[0] == self.failing_payload:
            raise RuntimeError(f"engine error in chunk {self.failing_payload}")

    def score(self, prepared: PreparedChunk) -> np.ndarray:
        self.calls.append([prepared.payload[0]])
        self.gate.wait(10)
        self._check(prepared)
        return np.asarray(prepared.payload, dtype=float)

    def score_many(self, prepared: list[PreparedChunk]) -> list[np.ndarray]:
        self.calls.append([p.payload[0] for p in prepared])
        self.gate.wait(10)
        for p in prepared:
            self._check(p)
        return [np.asarray(p.payload, dtype=float) for p in prepared]


def chunk(first: float, pairs: int = 10) -> PreparedChunk:
    return PreparedChunk(pairs, pairs * 5, 0, [first + i for i in range(pairs)])


def run_threads(batcher: EngineBatcher, chunks: list[PreparedChunk], scorer: GatedScorer) -> dict[float, object]:
    results: dict[float, object] = {}

    def call(prepared: PreparedChunk) -> None:
        try:
            results[prepared.payload[0]] = batcher.score(prepared)
        except Exception as error:  # noqa: BLE001 - the test looks at it
            results[prepared.payload[0]] = error

    threads = [threading.Thread(target=call, args=(chunks[0],))]
    threads[0].start()
    while not scorer.calls:  # the first chunk holds the engine
        time.sleep(0.01)
    for prepared in chunks[1:]:
        threads.append(threading.Thread(target=call, args=(prepared,)))
        threads[-1].start()
    while len(batcher.waiting) < len(chunks) - 1:  # the others queue behind it
        time.sleep(0.01)
    scorer.gate.set()
    for thread in threads:
        thread.join(10)
    return results


def test_waiting_chunks_share_one_engine_call_and_get_their_own_scores() -> None:
    scorer = GatedScorer()
    chunks = [chunk(0), chunk(100), chunk(200), chunk(300)]
    results = run_threads(EngineBatcher(scorer, pair_limit=30), chunks, scorer)
    assert scorer.calls == [[0], [100, 200, 300]], "the three waiting chunks went in one call"
    for prepared in chunks:
        assert np.array_equal(results[prepared.payload[0]], prepared.payload)


def test_the_pair_limit_splits_groups_in_arrival_order() -> None:
    scorer = GatedScorer()
    chunks = [chunk(0), chunk(100), chunk(200), chunk(300)]
    run_threads(EngineBatcher(scorer, pair_limit=20), chunks, scorer)
    assert scorer.calls == [[0], [100, 200], [300]]


def test_without_a_limit_every_chunk_has_its_own_call() -> None:
    scorer = GatedScorer()
    run_threads(EngineBatcher(scorer, pair_limit=None), [chunk(0), chunk(100), chunk(200)], scorer)
    assert scorer.calls == [[0], [100], [200]]


def test_a_failing_chunk_fails_alone_after_its_group_is_retried_one_by_one() -> None:
    scorer = GatedScorer(failing_payload=200)
    chunks = [chunk(0), chunk(100), chunk(200), chunk(300)]
    results = run_threads(EngineBatcher(scorer, pair_limit=100), chunks, scorer)
    assert scorer.calls == [[0], [100, 200, 300], [100], [200], [300]]
    assert isinstance(results[200], RuntimeError) and "chunk 200" in str(results[200])
    for first in (0, 100, 300):
        assert np.array_equal(results[first], np.arange(first, first + 10, dtype=float))


def test_a_single_failing_chunk_raises_in_its_own_call() -> None:
    scorer = GatedScorer(failing_payload=0)
    scorer.gate.set()
    with pytest.raises(RuntimeError, match="chunk 0"):
        EngineBatcher(scorer, pair_limit=100).score(chunk(0))
