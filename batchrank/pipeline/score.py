"""The score stage: one thread owns the engine and keeps it fed across chunk boundaries.

Chunks are submitted from any thread (the executors' workers, after reading and preparing them); the engine thread
adds each one's requests to the engine as soon as it arrives, while earlier chunks are still running, and steps
the engine until every submitted chunk is scored. So the engine drains only when no prepared chunk is waiting,
not at the end of every chunk, and each chunk's scores are handed back (its future resolved) as soon as all of
its pairs are done.

Timing: a chunk's `seconds` is its share of the engine's busy time, from the later of its submission and the
previous chunk's completion to its own completion. Summed over one engine's chunks it is the time the engine held
work, the same definition whichever executor runs it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from itertools import count

import numpy as np

from batchrank.scoring.base import PreparedChunk, Scorer

log = logging.getLogger(__name__)


class EngineStopped(RuntimeError):
    """The engine loop stopped (the job is ending) before this chunk was scored."""


@dataclass(frozen=True)
class Scores:
    values: np.ndarray
    seconds: float  # the chunk's share of the engine's busy time
    finished_at: float  # time.time()


@dataclass
class _InEngine:
    future: Future[Scores]
    submitted: float


class EngineLoop:
    """The engine's own thread: `submit` returns a future of the chunk's scores."""

    def __init__(self, scorer: Scorer, name: str = "worker-0"):
        self.scorer, self.name = scorer, name
        self._inbox: queue.SimpleQueue[tuple[int, PreparedChunk, Future[Scores]] | None] = queue.SimpleQueue()
        self._keys = count()
        self._stopping = threading.Event()
        self._closing = threading.Lock()  # a submit and the final drain of the inbox never interleave
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"batchrank-engine-{name}", daemon=True)
        self._thread.start()
        self.steps = 0
        self.drains = 0  # times the engine ran empty: no prepared chunk was waiting when the last one finished

    def submit(self, prepared: PreparedChunk) -> Future[Scores]:
        future: Future[Scores] = Future()
        with self._closing:
            if self._closed:
                future.set_exception(EngineStopped("the engine loop has stopped"))
            elif prepared.num_pairs == 0:  # every row of the chunk was rejected: nothing for the engine
                future.set_result(Scores(np.empty(0), 0.0, time.time()))
            else:
                self._inbox.put((next(self._keys), prepared, future))
        return future

    def stop(self) -> None:
        """Stop stepping; chunks not yet scored fail with EngineStopped (their callers stop waiting)."""
        self._stopping.set()
        self._inbox.put(None)
        self._thread.join(timeout=600)

    def _run(self) -> None:
        in_engine: dict[int, _InEngine] = {}
        last_done = time.perf_counter()
        try:
            while not self._stopping.is_set():
                self._take_waiting(in_engine, block=not in_engine)
                if not in_engine:
                    continue
                try:
                    finished = self.scorer.step()
                except Exception as error:  # noqa: BLE001 - the engine failed: every chunk in it is lost
                    log.warning("%s: the engine failed with %d chunk(s) in it: %s", self.name, len(in_engine), error)
                    for item in in_engine.values():
                        item.future.set_exception(error)
                    in_engine.clear()
                    continue
                self.steps += 1
                for key, result in finished:
                    item = in_engine.pop(key)
                    if isinstance(result, BaseException):
                        item.future.set_exception(result)
                        continue
                    now = time.perf_counter()
                    item.future.set_result(Scores(result, now - max(last_done, item.submitted), time.time()))
                    last_done = now
                if not in_engine and not self._stopping.is_set():
                    self.drains += 1
        finally:
            self._fail_everything(in_engine)

    def _take_waiting(self, in_engine: dict[int, _InEngine], block: bool) -> None:
        """Add every chunk waiting in the inbox to the engine; wait for one only when the engine is empty."""
        while True:
            try:
                item = self._inbox.get(block=block, timeout=0.5 if block else None)
            except queue.Empty:
                return
            if item is None:
                return
            key, prepared, future = item
            if not future.set_running_or_notify_cancel():
                continue
            submitted = time.perf_counter()
            try:
                self.scorer.submit(key, prepared)
            except Exception as error:  # noqa: BLE001 - a request the engine refused fails its own chunk
                future.set_exception(error)
                continue
            in_engine[key] = _InEngine(future, submitted)
            block = False

    def _fail_everything(self, in_engine: dict[int, _InEngine]) -> None:
        stopped = EngineStopped("the engine loop stopped before this chunk was scored")
        for item in in_engine.values():
            if not item.future.done():
                item.future.set_exception(stopped)
        with self._closing:
            self._closed = True
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if item is not None and not item[2].done():
                item[2].set_exception(stopped)
