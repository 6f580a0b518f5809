"""Which requests are in the engine, for which chunk, and when the engine last finished one: one record, shared.

The score stage's engine thread submits chunks and steps the engine (pipeline/score.py), the scorer turns a chunk
into requests and their outputs back into the chunk's scores (scoring/requests.py), and the stall watchdog reads
how long the engine has held requests without finishing any. All of them read and write this one object, so there
is one answer to "what is in the engine, since when". Request ids are opaque ("r17"): a dict maps each one to its
chunk and position, nothing parses them.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Finish = Callable[[list[Any]], np.ndarray]


@dataclass
class ChunkInEngine:
    """One chunk's requests in the engine: whom to answer, and what has come back so far."""

    key: int
    label: str  # what a message calls it: "chunk 18 (rows 36000..37999)"
    future: Future[Any]  # the score stage's caller waits on it
    submitted: float  # time.perf_counter() when it entered the engine
    longest_prompt: int = 0  # tokens
    values: list[Any] = field(default_factory=list)  # by request position, as they finish
    remaining: int = 0
    finish: Finish | None = None  # the scorer's: request values (by position) -> the chunk's scores
    request_ids: list[str] = field(default_factory=list)


class InEngine:
    """Thread-safe: the engine thread adds and completes requests, the watchdog reads, the scorer aborts."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._chunks: dict[int, ChunkInEngine] = {}
        self._requests: dict[str, tuple[ChunkInEngine, int]] = {}
        self._ids = itertools.count()
        self._last_progress = 0.0  # when a request last finished, or when the engine last went from empty to busy

    def add(self, chunk: ChunkInEngine, count: int, finish: Finish, longest_prompt: int) -> list[str]:
        """Record `count` requests for `chunk`; their ids, to hand to the engine."""
        with self._lock:
            if not self._requests:
                self._last_progress = self._clock()  # the stall clock starts when the engine gets work
            chunk.values, chunk.remaining, chunk.finish = [None] * count, count, finish
            chunk.longest_prompt = longest_prompt
            chunk.request_ids = [f"r{next(self._ids)}" for _ in range(count)]
            self._chunks[chunk.key] = chunk
            for position, request_id in enumerate(chunk.request_ids):
                self._requests[request_id] = (chunk, position)
            return chunk.request_ids

    def complete(self, results: Iterable[tuple[str, Any]]) -> list[tuple[ChunkInEngine, np.ndarray | BaseException]]:
        """Record finished requests (a value, or the error that failed it); the chunks now done, with their scores
        or the error that failed them. Requests this record does not hold (a failed chunk's late ones) are dropped."""
        done: list[tuple[ChunkInEngine, BaseException | None]] = []
        with self._lock:
            for request_id, value in results:
                found = self._requests.get(request_id)
                if found is None:
                    continue
                self._last_progress = self._clock()
                chunk, position = found
                if isinstance(value, BaseException):
                    self._drop(chunk)
                    done.append((chunk, value))
                    continue
                del self._requests[request_id]
                chunk.values[position] = value
                chunk.remaining -= 1
                if chunk.remaining == 0:
                    self._drop(chunk)
                    done.append((chunk, None))
        return [(chunk, error if error is not None else _finished(chunk)) for chunk, error in done]

    def remove_all(self) -> list[ChunkInEngine]:
        """Forget every chunk (the engine failed or stalled); the chunks that were in it."""
        with self._lock:
            chunks = list(self._chunks.values())
            self._chunks.clear()
            self._requests.clear()
            return chunks

    def chunks(self) -> list[ChunkInEngine]:
        with self._lock:
            return sorted(self._chunks.values(), key=lambda chunk: chunk.submitted)

    def request_ids(self) -> list[str]:
        with self._lock:
            return list(self._requests)

    def has_open(self) -> bool:
        with self._lock:
            return bool(self._chunks)

    def idle_seconds(self) -> float | None:
        """Seconds the engine has held requests without finishing any; None while it holds none."""
        with self._lock:
            return self._clock() - self._last_progress if self._requests else None

    def _drop(self, chunk: ChunkInEngine) -> None:
        self._chunks.pop(chunk.key, None)
        for request_id in chunk.request_ids:
            self._requests.pop(request_id, None)


def _finished(chunk: ChunkInEngine) -> np.ndarray | BaseException:
    assert chunk.finish is not None
    try:
        return chunk.finish(chunk.values)
    except Exception as error:  # noqa: BLE001 - this chunk's own failure
        return error
