"""The local executor: one engine in this process; reading and tokenizing run ahead on a thread."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from batchrank.checkpoint import Manifest, OutputDir
from batchrank.errors import RunFailure
from batchrank.execute.chunk_io import ChunkIO, ChunkWork, score_prepared
from batchrank.io.input import InputFiles
from batchrank.plan import Chunk
from batchrank.progress import Progress
from batchrank.scoring.base import Scorer
from batchrank.spec import JobSpec

log = logging.getLogger(__name__)


def score_with_retries(scorer: Scorer, work: ChunkWork, max_attempts: int) -> np.ndarray:
    chunk, prepared = work.chunk, work.prepared
    for attempt in range(1, max_attempts + 1):
        try:
            return score_prepared(scorer, prepared)
        except Exception as error:  # noqa: BLE001 - any engine error is retried, then reported with the chunk
            if attempt == max_attempts:
                raise RunFailure(
                    f"chunk {chunk.chunk_id} (rows {chunk.start}..{chunk.start + chunk.num_rows - 1}) failed "
                    f"{max_attempts} time(s); last error: {type(error).__name__}: {error}"
                ) from error
            log.warning("chunk %d failed (attempt %d/%d): %s; retrying", chunk.chunk_id, attempt, max_attempts, error)
    raise AssertionError("unreachable")


def run_local(
    chunks: Iterable[Chunk],
    load: Callable[[Chunk], ChunkWork],
    scorer: Scorer,
    finish: Callable[[ChunkWork, np.ndarray], None],
    max_attempts: int,
    prefetch: int,
) -> None:
    """Score chunks in order; `load` (read + tokenize) for the next chunks overlaps the engine's work."""
    pending = iter(chunks)
    in_flight: deque[Future[ChunkWork]] = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batchrank-prepare") as pool:
        try:
            for chunk in pending:
                in_flight.append(pool.submit(load, chunk))
                if len(in_flight) > prefetch:
                    work = in_flight.popleft().result()
                    finish(work, score_with_retries(scorer, work, max_attempts))
            while in_flight:
                work = in_flight.popleft().result()
                finish(work, score_with_retries(scorer, work, max_attempts))
        finally:
            for future in in_flight:
                future.cancel()


def run_local_job(
    spec: JobSpec,
    files: InputFiles,
    manifest: Manifest,
    out: OutputDir,
    pending: list[Chunk],
    progress: Progress,
    scorer_factory: Callable[[JobSpec], Scorer],
) -> dict[str, Any]:
    """Start one engine here and score the pending chunks; returns the scorer's description for run.json."""
    scorer = scorer_factory(spec)
    io = ChunkIO(spec, files, manifest, out, scorer)
    progress.restart_clock()
    last = time.perf_counter()

    def finish(work: ChunkWork, scores: np.ndarray) -> None:
        nonlocal last
        now = time.perf_counter()
        io.finish(work, scores, now - last)
        last = now
        progress.chunk_done(work[0].num_rows)

    run_local(pending, io.load, scorer, finish, spec.run.max_attempts, spec.run.prefetch_chunks)
    return {"executor": "local", "scorer": getattr(scorer, "describe", dict)()}
