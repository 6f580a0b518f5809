"""The score stage: one thread owns the engine and keeps it fed across chunk boundaries; a watchdog makes sure it
never waits for ever.

Chunks are submitted from any thread (the executors' workers, after reading and preparing them); the engine thread
adds each one's requests to the engine as soon as it arrives, while earlier chunks are still running, and steps
the engine until every submitted chunk is scored. So the engine drains only when no prepared chunk is waiting,
not at the end of every chunk, and each chunk's scores are handed back (its future resolved) as soon as all of
its pairs are done. What is in the engine is the scorer's InEngine record (scoring/in_engine.py), which the
watchdog reads: an engine that holds requests and finishes none of them for `stall_timeout` seconds fails every
chunk in it with EngineStalled and is stopped (a step blocked inside it returns).

Timing: a chunk's `seconds` is its share of the engine's busy time, from the later of its submission and the
previous chunk's completion to its own completion. Summed over one engine's chunks it is the time the engine held
work, the same definition whichever executor runs it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from itertools import count

import numpy as np

from batchrank.errors import EngineStalled
from batchrank.scoring.base import PreparedChunk, Scorer
from batchrank.scoring.in_engine import ChunkInEngine

log = logging.getLogger(__name__)

# How long stop() waits for the engine thread to finish its step (a stalled engine's thread is not waited for).
STOP_WAIT_SECONDS = 600.0


class EngineStopped(RuntimeError):
    """The engine loop stopped (the job is ending) before this chunk was scored."""


@dataclass(frozen=True)
class Scores:
    values: np.ndarray
    seconds: float  # the chunk's share of the engine's busy time
    finished_at: float  # time.time()


_Waiting = tuple[int, str, PreparedChunk, "Future[Scores]"]


class EngineLoop:
    """The engine's own thread: `submit` returns a future of the chunk's scores."""

    def __init__(self, scorer: Scorer, name: str = "worker-0", stall_timeout: float | None = None):
        self.scorer, self.name, self.stall_timeout = scorer, name, stall_timeout
        self.in_engine = scorer.in_engine
        self._inbox: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._keys = count()
        self._stopping = threading.Event()
        self._closing = threading.Lock()  # a submit and the final drain of the inbox never interleave
        self._closed: BaseException | None = None  # why submits fail from now on
        self.stalled: EngineStalled | None = None
        self.steps = 0
        self.drains = 0  # times the engine ran empty: no prepared chunk was waiting when the last one finished
        self._thread = threading.Thread(target=self._run, name=f"batchrank-engine-{name}", daemon=True)
        self._thread.start()
        if stall_timeout:
            threading.Thread(target=self._watch, name=f"batchrank-watchdog-{name}", daemon=True).start()

    def submit(self, prepared: PreparedChunk, label: str = "a chunk") -> Future[Scores]:
        """Score a prepared chunk; `label` names it in messages ("chunk 18 (rows ...)")."""
        future: Future[Scores] = Future()
        with self._closing:
            if self._closed is not None:
                future.set_exception(self._closed)
            elif prepared.num_pairs == 0:  # every row of the chunk was rejected: nothing for the engine
                future.set_result(Scores(np.empty(0), 0.0, time.time()))
            else:
                self._inbox.put((next(self._keys), label, prepared, future))
        return future

    def stop(self) -> None:
        """Stop stepping; chunks not yet scored fail with EngineStopped (their callers stop waiting)."""
        self._stopping.set()
        self._inbox.put(None)
        self._thread.join(timeout=5.0 if self.stalled else STOP_WAIT_SECONDS)
        self._close(EngineStopped("the engine loop stopped before this chunk was scored"))

    def _run(self) -> None:
        last_done = time.perf_counter()
        try:
            while not self._stopping.is_set():
                self._take_waiting(block=not self.in_engine.has_open())
                if not self.in_engine.has_open():
                    continue
                try:
                    finished = self.scorer.step()
                except Exception as error:  # noqa: BLE001 - the engine failed: every chunk in it is lost
                    if self._stopping.is_set():
                        return
                    chunks = self.in_engine.remove_all()
                    log.warning("%s: the engine failed with %d chunk(s) in it: %s", self.name, len(chunks), error)
                    for chunk in chunks:
                        _settle(chunk.future, error)
                    continue
                self.steps += 1
                for chunk, result in finished:
                    if isinstance(result, BaseException):
                        _settle(chunk.future, result)
                        continue
                    now = time.perf_counter()
                    _settle(chunk.future, Scores(result, now - max(last_done, chunk.submitted), time.time()))
                    last_done = now
                if not self.in_engine.has_open() and not self._stopping.is_set():
                    self.drains += 1
        finally:
            self._close(EngineStopped("the engine loop stopped before this chunk was scored"))

    def _take_waiting(self, block: bool) -> None:
        """Add every chunk waiting in the inbox to the engine; wait for one only when the engine is empty."""
        while True:
            try:
                item = self._inbox.get(block=block, timeout=0.5 if block else None)
            except queue.Empty:
                return
            if item is None:
                return
            key, label, prepared, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                self.scorer.submit(ChunkInEngine(key, label, future, time.perf_counter()), prepared)
            except Exception as error:  # noqa: BLE001 - a request the engine refused fails its own chunk
                _settle(future, error)
                continue
            block = False

    def _watch(self) -> None:
        """Fail the chunks of an engine that holds requests and finishes none of them for stall_timeout."""
        assert self.stall_timeout
        interval = min(5.0, self.stall_timeout / 4)
        while not self._stopping.wait(interval):
            idle = self.in_engine.idle_seconds()
            if idle is not None and idle >= self.stall_timeout:
                self._stall(idle)
                return

    def _stall(self, idle: float) -> None:
        chunks = self.in_engine.chunks()
        try:
            settings = self.scorer.engine_settings()
        except Exception as error:  # noqa: BLE001 - a broken engine may not answer; the message still goes out
            settings = {"unreadable": str(error)}
        self.stalled = EngineStalled(stall_message(chunks, idle, self.stall_timeout or idle, settings))
        log.error("%s: %s", self.name, self.stalled)
        self._stopping.set()
        self._close(self.stalled)
        for chunk in self.in_engine.remove_all():
            _settle(chunk.future, self.stalled)
        try:
            self.scorer.abandon()
        except Exception as error:  # noqa: BLE001 - the job stops either way; the engine may be gone already
            log.warning("%s: stopping the stalled engine: %s", self.name, error)

    def _close(self, reason: BaseException) -> None:
        """From now on submits fail with `reason`; chunks still waiting in the inbox or the engine fail with it."""
        with self._closing:
            if self._closed is None:
                self._closed = reason
        for chunk in self.in_engine.chunks():  # left in the record: the scorer's close aborts their requests
            _settle(chunk.future, self._closed)
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                _settle(item[3], self._closed)


def stall_message(chunks: list[ChunkInEngine], idle: float, timeout: float, settings: dict[str, object]) -> str:
    """What a stalled engine's chunks fail with: which chunks, how long, the longest prompt, the engine settings."""
    requests = sum(len(chunk.request_ids) for chunk in chunks)
    longest = max((chunk.longest_prompt for chunk in chunks), default=0)
    named = chunks[0].label if chunks else "no chunk"
    if len(chunks) > 1:
        named += f" and {len(chunks) - 1} more chunk(s)"
    shown = ", ".join(f"{key} {value}" for key, value in settings.items())
    return (f"{named}: the engine held {requests:,} request(s) and finished none of them for {idle:.0f} s "
            f"(run.stall_timeout {timeout:g} s); the longest prompt is {longest:,} tokens; engine: {shown or 'n/a'}. "
            "The engine was stopped. If healthy steps on this machine are that slow (very long prompts on a CPU), "
            "raise run.stall_timeout")


def _settle(future: Future[Scores], outcome: Scores | BaseException) -> None:
    """Resolve a chunk's future once (the engine thread and the watchdog may race to it)."""
    try:
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except InvalidStateError:
        pass
