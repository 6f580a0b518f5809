"""The executor contract, and the dispatch every executor shares.

An executor runs a job's pending chunks through ChunkPipeline on its workers: one engine in this process (local.py)
or Ray actors each hosting one (ray_executor.py). What they share lives here: the queue of chunks, a few chunks in
flight per worker (one being read and tokenized while another is in the engine), retries (an engine error is
retried `run.max_attempts` times, bad input is not retried, a lost worker's chunks go back to the queue), and what
is recorded when a part is written. An executor only says how a chunk is started on a worker and how to wait for
one to finish. Adding one (Slurm, Ray Data, ...) means writing one file and naming it in EXECUTORS.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from batchrank.errors import BatchrankError, EngineStalled, RunFailure
from batchrank.io.parts import PartWritten
from batchrank.pipeline.context import JobContext
from batchrank.plan import Chunk
from batchrank.scoring.base import ScorerFactory

log = logging.getLogger("batchrank")


class WorkerLost(Exception):
    """A worker died (killed, out of memory, a GPU fault): every chunk it held goes back to the queue."""


@dataclass
class ExecutionSummary:
    """What run.json's `execution` says: the executor, its workers, their rates, the chunks retried."""

    executor: str
    workers: int
    per_worker: dict[str, dict[str, float]] = field(default_factory=dict)
    chunks_retried: list[int] = field(default_factory=list)
    scorer: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"executor": self.executor, "workers": self.workers, **self.details, "per_worker": self.per_worker,
                "chunks_retried": self.chunks_retried}


class Executor(ABC):
    name: ClassVar[str]

    def __init__(self, context: JobContext, factory: ScorerFactory, on_part: Callable[[PartWritten], None],
                 on_scoring_started: Callable[[], None]):
        self.context, self.factory = context, factory
        self.on_part, self.on_scoring_started = on_part, on_scoring_started

    @abstractmethod
    def run(self, pending: list[Chunk]) -> ExecutionSummary:
        """Score every pending chunk (writing its part), or raise: BatchrankError for bad input, RunFailure."""


def short_error(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text.splitlines()[0][:300] if text else type(error).__name__


@dataclass
class DispatchTiming:
    """Where the driver's time goes while it dispatches: waiting for a worker, or its own work per chunk (results,
    the ledger, progress, handing out the next chunk). run.json's execution.dispatch: how close the driver is to
    being the limit (docs/scale.md)."""

    chunks: int = 0
    seconds: float = 0.0
    wait_seconds: float = 0.0
    cpu_seconds: float = 0.0  # of the whole driver process (its other threads too)
    _started: tuple[float, float] = (0.0, 0.0)

    def begin(self) -> None:
        self._started = (time.perf_counter(), time.process_time())

    def end(self) -> None:
        self.seconds = time.perf_counter() - self._started[0]
        self.cpu_seconds = time.process_time() - self._started[1]

    @contextmanager
    def waiting(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.wait_seconds += time.perf_counter() - started

    def to_json(self) -> dict[str, float]:
        busy = self.seconds - self.wait_seconds
        per_chunk = 1000 / max(self.chunks, 1)
        return {"chunks": self.chunks, "seconds": round(self.seconds, 3), "busy_seconds": round(busy, 3),
                "busy_ms_per_chunk": round(busy * per_chunk, 3),
                "cpu_ms_per_chunk": round(self.cpu_seconds * per_chunk, 3),
                "chunks_per_second": round(self.chunks / max(self.seconds, 1e-9), 2)}


class Dispatch(ABC):
    """Hands chunks to workers as they have room, retries failures, and records finished parts."""

    def __init__(self, context: JobContext, on_part: Callable[[PartWritten], None]):
        self.window = context.spec.run.chunks_in_flight_per_worker
        self.max_attempts = context.spec.run.max_attempts
        self.on_part = on_part
        self.queue: deque[Chunk] = deque()
        self.attempts: Counter[int] = Counter()
        self.retried: set[int] = set()
        self.in_flight: dict[Hashable, tuple[Any, Chunk]] = {}
        self.load: Counter[Any] = Counter()  # chunks in flight per worker
        self.pairs: Counter[str] = Counter()
        self.busy_seconds: Counter[str] = Counter()
        self.timing = DispatchTiming()

    @abstractmethod
    def start(self, worker: Any, chunk: Chunk, retry: bool) -> Hashable:
        """Start `chunk` on `worker`; a handle to wait on."""

    @abstractmethod
    def wait(self, handles: list[Hashable]) -> list[Hashable]:
        """Block until at least one of the handles is finished; those that are."""

    @abstractmethod
    def result(self, handle: Hashable) -> PartWritten:
        """The finished chunk, or its error (WorkerLost when the worker died)."""

    def replace(self, worker: Any) -> Any:
        """A new worker in place of a lost one."""
        raise RunFailure(f"{worker} was lost")

    def run(self, workers: list[Any], pending: list[Chunk]) -> list[Any]:
        """Dispatch until every chunk is done; returns the workers (lost ones replaced)."""
        self.queue.extend(pending)
        workers = list(workers)
        self.timing.begin()
        self._fill(workers)
        while self.in_flight:
            with self.timing.waiting():
                ready = self.wait(list(self.in_flight))
            for handle in ready:
                worker, chunk = self.in_flight.pop(handle)
                self.load[worker] -= 1
                try:
                    part = self.result(handle)
                except WorkerLost as error:
                    log.warning("%s died: %s", worker, short_error(error))
                    self._requeue(chunk, error)
                    for other, (other_worker, other_chunk) in list(self.in_flight.items()):
                        if other_worker is worker:
                            del self.in_flight[other]
                            self._requeue(other_chunk, error)
                    workers[workers.index(worker)] = self.replace(worker)
                except (BatchrankError, EngineStalled):
                    raise  # bad input is the user's to fix, and a stalled engine would stall again: no retry
                except Exception as error:  # noqa: BLE001 - any engine error is retried, then reported with the chunk
                    self._requeue(chunk, error)
                else:
                    self.pairs[part.stats.worker] += part.stats.pairs
                    self.busy_seconds[part.stats.worker] += part.stats.seconds
                    self.on_part(part)
                    self.timing.chunks += 1
            self._fill(workers)
        self.timing.end()
        return workers

    def _fill(self, workers: list[Any]) -> None:
        for worker in workers:
            while self.queue and self.load[worker] < self.window:
                chunk = self.queue.popleft()
                self.in_flight[self.start(worker, chunk, retry=chunk.chunk_id in self.retried)] = (worker, chunk)
                self.load[worker] += 1

    def _requeue(self, chunk: Chunk, error: BaseException) -> None:
        self.attempts[chunk.chunk_id] += 1
        if self.attempts[chunk.chunk_id] >= self.max_attempts:
            raise RunFailure(
                f"chunk {chunk.chunk_id} ({chunk.rows}) failed {self.attempts[chunk.chunk_id]} time(s); "
                f"last error: {short_error(error)}"
            ) from error
        self.retried.add(chunk.chunk_id)
        log.warning("chunk %d failed (attempt %d/%d): %s; retrying", chunk.chunk_id, self.attempts[chunk.chunk_id],
                    self.max_attempts, short_error(error))
        self.queue.appendleft(chunk)

    def per_worker(self) -> dict[str, dict[str, float]]:
        """Pairs and pairs/s of each engine over its busy time (its chunks' summed seconds)."""
        return {name: {"pairs": pairs, "pairs_per_second": round(pairs / max(self.busy_seconds[name], 1e-9), 2)}
                for name, pairs in sorted(self.pairs.items()) if pairs}
