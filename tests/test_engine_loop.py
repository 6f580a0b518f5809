"""The score stage (pipeline/score.py): one engine thread keeps the engine fed across chunk boundaries, and each
chunk gets its own scores, or its own error, as soon as its last pair is done."""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np
import pytest

from batchrank.errors import EngineStalled
from batchrank.pipeline.score import EngineLoop, EngineStopped
from batchrank.scoring.base import PreparedChunk
from batchrank.scoring.in_engine import ChunkInEngine, InEngine


class StepEngine:
    """An engine that scores `per_step` pairs per step, first in first out, like vLLM's scheduler with max_num_seqs:
    a chunk's pairs may finish over several steps, and a step may finish the end of one chunk and the start of the
    next. Scores = the payload values; a chunk whose first value is `failing` fails alone. `stalls`: every step
    blocks until the engine is abandoned, as vLLM's step does when its engine core schedules nothing."""

    kind = "qwen3-yes-no"

    def __init__(self, per_step: int = 4, failing: float | None = None, step_seconds: float = 0.0,
                 stalls: bool = False):
        self.per_step, self.failing, self.step_seconds, self.stalls = per_step, failing, step_seconds, stalls
        self.in_engine = InEngine()
        self.queue: deque[tuple[str, float]] = deque()  # (request id, value)
        self.queued_at_each_step: list[int] = []
        self.crash_next_step = False
        self.abandoned = threading.Event()
        self.lock = threading.Lock()

    def prepare(self, pairs):  # not used: the tests hand prepared chunks to the loop
        raise NotImplementedError

    def submit(self, chunk: ChunkInEngine, prepared: PreparedChunk) -> None:
        def finish(values: list[float]) -> np.ndarray:
            if values[0] == self.failing:
                raise RuntimeError(f"engine error in chunk {values[0]:g}")
            return np.asarray(values, dtype=float)

        with self.lock:
            ids = self.in_engine.add(chunk, prepared.num_pairs, finish, longest_prompt=5 * prepared.num_pairs)
            self.queue.extend(zip(ids, prepared.payload, strict=True))

    def step(self) -> list[tuple[ChunkInEngine, np.ndarray | BaseException]]:
        if self.stalls:
            self.abandoned.wait()
            raise RuntimeError("the engine was stopped")
        time.sleep(self.step_seconds)
        with self.lock:
            self.queued_at_each_step.append(len(self.queue))
            if self.crash_next_step:
                self.crash_next_step = False
                self.queue.clear()
                raise RuntimeError("the engine died")
            done = [self.queue.popleft() for _ in range(min(self.per_step, len(self.queue)))]
        return self.in_engine.complete(done)

    def engine_settings(self) -> dict:
        return {"max_num_seqs": self.per_step}

    def abandon(self) -> None:
        self.abandoned.set()

    def describe(self) -> dict:
        return {}

    def close(self) -> None:
        pass


def chunk(first: float, pairs: int = 10) -> PreparedChunk:
    return PreparedChunk(pairs, pairs * 5, 0, [first + i for i in range(pairs)])


def test_every_chunk_gets_its_own_scores_though_they_share_engine_steps() -> None:
    engine = StepEngine(per_step=4)  # 10 pairs a chunk, 4 a step: steps straddle chunk boundaries
    loop = EngineLoop(engine)
    chunks = [chunk(100.0 * i) for i in range(6)]
    futures = [loop.submit(c) for c in chunks]
    try:
        for prepared, future in zip(chunks, futures, strict=True):
            assert np.array_equal(future.result(timeout=10).values, prepared.payload)
    finally:
        loop.stop()


def test_the_engine_never_runs_empty_while_prepared_chunks_remain() -> None:
    """Two chunks in flight, as an executor keeps them: the next chunk is in the engine before the current one
    ends, so the engine's queue is never empty at a step until the input is exhausted."""
    engine = StepEngine(per_step=4, step_seconds=0.002)
    loop = EngineLoop(engine)
    chunks, in_flight = [chunk(100.0 * i) for i in range(20)], deque()
    try:
        for prepared in chunks:
            in_flight.append(loop.submit(prepared))
            if len(in_flight) == 2:
                in_flight.popleft().result(timeout=10)
        while in_flight:
            in_flight.popleft().result(timeout=10)
    finally:
        loop.stop()
    assert 0 not in engine.queued_at_each_step, "a step ran with nothing queued: the engine drained mid-job"
    assert loop.drains == 1, "the engine emptied once: at the end of the input"


def test_chunk_seconds_add_up_to_the_engines_busy_time() -> None:
    engine = StepEngine(per_step=5, step_seconds=0.01)
    loop = EngineLoop(engine)
    started = time.perf_counter()
    futures = [loop.submit(chunk(100.0 * i)) for i in range(4)]
    results = [f.result(timeout=10) for f in futures]
    busy = time.perf_counter() - started
    loop.stop()
    assert sum(r.seconds for r in results) == pytest.approx(busy, rel=0.15)
    assert all(r.seconds > 0 for r in results)


def test_a_failing_chunk_fails_alone() -> None:
    engine = StepEngine(per_step=3, failing=200.0)
    loop = EngineLoop(engine)
    futures = {first: loop.submit(chunk(first)) for first in (0.0, 100.0, 200.0, 300.0)}
    try:
        with pytest.raises(RuntimeError, match="chunk 200"):
            futures[200.0].result(timeout=10)
        for first in (0.0, 100.0, 300.0):
            assert np.array_equal(futures[first].result(timeout=10).values, np.arange(first, first + 10))
    finally:
        loop.stop()


def test_an_engine_failure_fails_the_chunks_in_it_and_the_loop_goes_on() -> None:
    engine = StepEngine(per_step=1, step_seconds=0.001)
    engine.crash_next_step = True
    loop = EngineLoop(engine)
    lost = [loop.submit(chunk(0.0)), loop.submit(chunk(100.0))]
    try:
        for future in lost:
            with pytest.raises(RuntimeError, match="the engine died"):
                future.result(timeout=10)
        later = loop.submit(chunk(500.0, pairs=3))
        assert np.array_equal(later.result(timeout=10).values, [500.0, 501.0, 502.0])
    finally:
        loop.stop()


def test_stopping_fails_what_is_not_scored_and_refuses_new_chunks() -> None:
    engine = StepEngine(per_step=1, step_seconds=0.05)
    loop = EngineLoop(engine)
    pending = loop.submit(chunk(0.0, pairs=100))
    loop.stop()
    with pytest.raises(EngineStopped):
        pending.result(timeout=10)
    with pytest.raises(EngineStopped):
        loop.submit(chunk(1.0)).result(timeout=1)


def test_a_chunk_with_nothing_to_score_needs_no_engine() -> None:
    loop = EngineLoop(StepEngine())
    try:
        assert loop.submit(PreparedChunk(0, 0, 0, None)).result(timeout=1).values.size == 0
    finally:
        loop.stop()


def test_an_engine_that_finishes_nothing_fails_its_chunks_within_the_stall_timeout() -> None:
    """vLLM's step can wait for ever (a prompt its scheduler never schedules): the watchdog fails every chunk in
    the engine with a message naming them, stops the engine (which wakes the blocked step) and refuses new chunks."""
    engine = StepEngine(stalls=True)
    loop = EngineLoop(engine, stall_timeout=0.5)
    started = time.monotonic()
    futures = [loop.submit(chunk(0.0, pairs=7), "chunk 7 (rows 70..76)"), loop.submit(chunk(100.0), "chunk 8")]
    for future in futures:
        with pytest.raises(EngineStalled) as stalled:
            future.result(timeout=10)
    assert time.monotonic() - started < 5
    message = str(stalled.value)
    assert message.startswith("chunk 7 (rows 70..76) and 1 more chunk(s): the engine held 17 request(s) and "
                              "finished none of them for ")
    assert "(run.stall_timeout 0.5 s); the longest prompt is 50 tokens; engine: max_num_seqs 4" in message
    assert engine.abandoned.is_set()
    with pytest.raises(EngineStalled):
        loop.submit(chunk(200.0)).result(timeout=1)
    stopping = time.monotonic()
    loop.stop()
    assert time.monotonic() - stopping < 6


def test_a_slow_engine_that_keeps_finishing_requests_is_not_stalled() -> None:
    engine = StepEngine(per_step=1, step_seconds=0.1)  # one request a step: the chunk takes 2 s, 4x the timeout
    loop = EngineLoop(engine, stall_timeout=0.5)
    try:
        assert np.array_equal(loop.submit(chunk(0.0, pairs=20)).result(timeout=30).values, np.arange(20.0))
        assert not engine.abandoned.is_set() and loop.stalled is None
    finally:
        loop.stop()
