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
from batchrank.redact import redact
from batchrank.scoring.base import ScorerFactory

log = logging.getLogger("batchrank")


class WorkerLost(Exception):
    """A worker died (killed, out of memory, a GPU fault): every chunk it held goes back to the queue."""


@dataclass(frozen=True)
class LostWorker:
    """A worker the job lost, why, and the chunks it held then (run.json's execution.lost_workers)."""

    worker: str
    reason: str
    chunks: list[int]


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


def short_error(error: BaseException, with_type: bool = True) -> str:
    """One line of an exception's message for a log line or a failure message, credentials masked."""
    text = redact(f"{type(error).__name__}: {error}" if with_type else f"{error}")
    return text.splitlines()[0][:300] if text.strip() else type(error).__name__


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
        """Start (or start over: a Ray dispatch counts from its first worker's engine up)."""
        self._started = (time.perf_counter(), time.process_time())
        self.wait_seconds = 0.0

    def end(self) -> None:
        self.seconds = time.perf_counter() - self._started[0]
        self.cpu_seconds = time.process_time() - self._started[1]

    @contextmanager
    def waiting(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.wait_seconds += time.perf_counter() - max(started, self._started[0])

    def to_json(self) -> dict[str, float]:
        busy = self.seconds - self.wait_seconds
        per_chunk = 1000 / max(self.chunks, 1)
        return {"chunks": self.chunks, "seconds": round(self.seconds, 3), "busy_seconds": round(busy, 3),
                "busy_ms_per_chunk": round(busy * per_chunk, 3),
                "cpu_ms_per_chunk": round(self.cpu_seconds * per_chunk, 3),
                "chunks_per_second": round(self.chunks / max(self.seconds, 1e-9), 2)}


class Dispatch(ABC):
    """Hands chunks to workers as they have room, retries failures, and records finished parts.

    A chunk's attempts count its own errors only. A worker that is lost (killed, preempted, its node gone, or
    silent past run.stall_timeout) gives its chunks back to the queue without using up their attempts; the job
    stops instead when more workers are lost than `max_lost` (workers dying in a loop)."""

    def __init__(self, context: JobContext, on_part: Callable[[PartWritten], None], max_lost: int = 0):
        self.window = context.spec.run.chunks_in_flight_per_worker
        self.max_attempts = context.spec.run.max_attempts
        self.max_lost = max_lost
        self.on_part = on_part
        self.queue: deque[Chunk] = deque()
        self.attempts: Counter[int] = Counter()
        self.retried: set[int] = set()
        self.in_flight: dict[Hashable, tuple[Any, Chunk]] = {}
        self.load: Counter[Any] = Counter()  # chunks in flight per worker
        self.workers: list[Any] = []
        self.lost: list[LostWorker] = []
        self._gone: set[Any] = set()
        self.pairs: Counter[str] = Counter()
        self.busy_seconds: Counter[str] = Counter()
        self.timing = DispatchTiming()

    @abstractmethod
    def start(self, worker: Any, chunk: Chunk, retry: bool) -> Hashable:
        """Start `chunk` on `worker`; a handle to wait on."""

    @abstractmethod
    def wait(self, handles: list[Hashable]) -> list[Hashable]:
        """Block until at least one of the handles is finished (or, for an executor whose workers come and go, until
        the pool changed or a moment passed); those that are finished."""

    @abstractmethod
    def result(self, handle: Hashable) -> PartWritten:
        """The finished chunk, or its error (WorkerLost when the worker died)."""

    def replace(self, worker: Any) -> None:
        """Ask for a new worker in place of a lost one; it joins through `add_worker` once it is ready."""
        raise RunFailure(f"{worker} was lost")

    def run(self, workers: list[Any], pending: list[Chunk]) -> list[Any]:
        """Dispatch until every chunk is done; returns the workers at the end (lost ones gone, new ones joined)."""
        self.queue.extend(pending)
        self.workers.extend(workers)
        self.timing.begin()
        while True:
            self._fill()
            if not self.in_flight and not self.queue:
                break
            with self.timing.waiting():
                ready = self.wait(list(self.in_flight))
            for handle in ready:
                if handle in self.in_flight:  # not given back already, with a worker lost meanwhile
                    self._collect(handle)
        self.timing.end()
        return self.workers

    def add_worker(self, worker: Any) -> None:
        """A worker that has become ready takes chunks from now on."""
        self.workers.append(worker)

    def lose_worker(self, worker: Any, reason: str, holding: tuple[Chunk, ...] = ()) -> None:
        """`worker` is gone: every chunk it held (`holding`, and those still in flight on it) goes back to the front
        of the queue, its attempts untouched, and a replacement is asked for; past `max_lost` the job stops."""
        held = [handle for handle, (owner, _) in self.in_flight.items() if owner is worker]
        chunks = [*holding, *(self.in_flight.pop(handle)[1] for handle in held)]
        for chunk in sorted(chunks, key=lambda c: c.chunk_id, reverse=True):
            self.retried.add(chunk.chunk_id)  # a part it wrote before its reply was lost is found, not redone
            self.queue.appendleft(chunk)
        if worker in self._gone:
            return  # already counted (its silence and its chunks' errors can both report it)
        self._gone.add(worker)
        if worker in self.workers:  # (one lost while starting never joined)
            self.workers.remove(worker)
        self.load.pop(worker, None)
        self.lost.append(LostWorker(str(worker), reason, sorted(c.chunk_id for c in chunks)))
        log.warning("%s lost: %s; its %d chunk(s) go back to the queue (a lost worker does not count against a "
                    "chunk's attempts; %d of at most %d workers lost)", worker, reason, len(chunks), len(self.lost),
                    self.max_lost)
        if len(self.lost) > self.max_lost:
            raise RunFailure(self._lost_in_a_loop(), rerun_helps=False)
        self.replace(worker)

    def _lost_in_a_loop(self) -> str:
        held = Counter(chunk_id for lost in self.lost for chunk_id in lost.chunks)
        often = ", ".join(f"chunk {chunk_id} ({times} times)" for chunk_id, times in held.most_common(3) if times > 1)
        return (f"{len(self.lost)} workers were lost (killed, preempted, out of memory or their node gone), more than "
                f"run.max_lost_workers {self.max_lost}: workers die in a loop"
                + (f"; the chunks they held most often: {often}" if often else "")
                + f"; the last: {self.lost[-1].worker}: {self.lost[-1].reason}")

    def _collect(self, handle: Hashable) -> None:
        worker, chunk = self.in_flight.pop(handle)
        self.load[worker] -= 1
        try:
            part = self.result(handle)
        except WorkerLost as error:
            self.lose_worker(worker, short_error(error, with_type=False), holding=(chunk,))
        except (BatchrankError, EngineStalled):
            raise  # bad input is the user's to fix, and a stalled engine would stall again: no retry
        except Exception as error:  # noqa: BLE001 - any engine error is retried, then reported with the chunk
            self._requeue(chunk, error)
        else:
            self.pairs[part.stats.worker] += part.stats.pairs
            self.busy_seconds[part.stats.worker] += part.stats.seconds
            self.on_part(part)
            self.timing.chunks += 1

    def _fill(self) -> None:
        for worker in self.workers:
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
