"""The scorer interface: what the pipeline's prepare and score stages call, whatever the model and engine.

A scorer prepares a chunk's pairs off the engine's thread (render, truncate, tokenize), then takes prepared chunks
into its engine one after another and hands each back when all of its pairs are scored: `submit` adds a chunk's
requests while earlier chunks are still running, `step` advances the engine once, so the engine's queue need never
run empty at a chunk boundary. A scorer factory checks a job's model before any engine starts and builds scorers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import polars as pl

from batchrank.scoring.in_engine import ChunkInEngine, InEngine
from batchrank.spec import JobSpec, ModelKind


@dataclass
class PreparedChunk:
    """A chunk rendered and tokenized, ready for the engine (built ahead, off the engine's thread)."""

    num_pairs: int
    prompt_tokens: int
    truncated_pairs: int
    payload: Any  # what the scorer's engine needs; only the scorer that made it reads it
    too_long_rows: list[int] = field(default_factory=list)
    longest_prompt: int = 0  # tokens (a stalled engine's message names it)


@dataclass(frozen=True)
class EnginePlacement:
    """Where an engine runs: how many engines share its GPU (each then takes a fixed share of its memory)."""

    engines_per_gpu: int = 1


@dataclass(frozen=True)
class ModelFacts:
    """What a job's model is, found without starting an engine (`batchrank validate` prints it)."""

    kind: ModelKind
    input_format: dict[str, Any]  # exactly what the model is fed (template, pair encoding, prefixes)
    max_model_len: int | None  # the length prompts are cut to (None: the engine's default)
    fingerprint: str  # of every model file the engine and tokenizer read
    weight_bytes: int = 0
    warnings: tuple[str, ...] = ()  # an input format that is allowed but probably not the model's (logged)


class Scorer(Protocol):
    kind: ModelKind
    in_engine: InEngine  # what is in its engine, since when: shared with the score stage and its stall watchdog

    def prepare(self, pairs: pl.DataFrame) -> PreparedChunk:
        """Render and tokenize the pairs (columns query_id, query, doc_id, document); thread-safe."""

    def submit(self, chunk: ChunkInEngine, prepared: PreparedChunk) -> None:
        """Add a prepared chunk's requests to the engine, recording them in `in_engine`."""

    def step(self) -> list[tuple[ChunkInEngine, np.ndarray | BaseException]]:
        """Advance the engine once; the chunks whose every pair is now scored, with one float score per pair in
        the order of the frame given to `prepare` (or the error that failed that chunk alone). An exception raised
        from here means the engine itself failed: every submitted chunk is lost."""

    def engine_settings(self) -> dict[str, Any]:
        """The engine settings that decide how prompts are scheduled (a stalled engine's message names them)."""

    def abandon(self) -> None:
        """Stop the engine now, from any thread, whatever the job's keep_engine says: it stalled, and a step
        blocked in it must return."""

    def describe(self) -> dict[str, Any]:
        """How it scores, for run.json (kind, template, engine arguments, ...)."""

    def close(self) -> None:
        """Release the engine (and its GPU memory) unless the process keeps it for another job."""


class ScorerFactory(Protocol):
    def inspect(self, spec: JobSpec) -> ModelFacts:
        """Check the model settings without starting an engine (a SpecError names the field) and describe them."""

    def too_long_queries(self, spec: JobSpec, facts: ModelFacts, queries: list[str]) -> list[int]:
        """Positions of the queries whose prompt leaves no room for any document token within max_model_len."""

    def create(self, spec: JobSpec, placement: EnginePlacement) -> Scorer:
        """Start a scorer (and its engine) for the job."""


class ChunkAtATimeScorer(ABC):
    """A Scorer whose engine scores one whole chunk per call (`score`), e.g. a reference or a test stand-in: each
    `step` scores the oldest submitted chunk (one request in `in_engine`)."""

    kind: ModelKind

    def __init__(self) -> None:
        self.in_engine = InEngine()
        self._submitted: deque[tuple[str, PreparedChunk]] = deque()

    @abstractmethod
    def prepare(self, pairs: pl.DataFrame) -> PreparedChunk: ...

    @abstractmethod
    def score(self, prepared: PreparedChunk) -> np.ndarray: ...

    def submit(self, chunk: ChunkInEngine, prepared: PreparedChunk) -> None:
        [request_id] = self.in_engine.add(chunk, 1, lambda values: values[0], prepared.longest_prompt)
        self._submitted.append((request_id, prepared))

    def step(self) -> list[tuple[ChunkInEngine, np.ndarray | BaseException]]:
        if not self._submitted:
            return []
        request_id, prepared = self._submitted.popleft()
        try:
            value: np.ndarray | BaseException = self.score(prepared)
        except Exception as error:  # noqa: BLE001 - this chunk's own failure, reported with the chunk
            value = error
        return self.in_engine.complete([(request_id, value)])

    def engine_settings(self) -> dict[str, Any]:
        return {}

    def abandon(self) -> None:
        self._submitted.clear()

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def close(self) -> None:
        self._submitted.clear()
        self.in_engine.remove_all()


def order_for_engine(query_positions: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Pairs of one query together (their prompt prefix is cached once), shorter documents first inside it."""
    return np.lexsort((lengths, query_positions))
