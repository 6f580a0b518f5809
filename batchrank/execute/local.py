"""The local executor: one engine in this process; reading and tokenizing run ahead on a thread."""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from batchrank.checkpoint import Manifest, OutputDir
from batchrank.errors import RunFailure
from batchrank.execute.chunk_io import ChunkIO, ChunkWork, score_prepared, score_together
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


def _take_ready_group(in_flight: deque[Future[ChunkWork]], pair_limit: int | None) -> list[ChunkWork]:
    """The next chunk, plus (with a limit) the chunks after it that are already prepared and fit the limit."""
    group = [in_flight.popleft().result()]
    pairs = group[0].prepared.num_pairs
    # A chunk whose preparation failed is left for its turn, so the job stops at it in order.
    while pair_limit and in_flight and in_flight[0].done() and in_flight[0].exception() is None:
        following = in_flight[0].result()
        if pairs + following.prepared.num_pairs > pair_limit:
            break
        group.append(in_flight.popleft().result())
        pairs += following.prepared.num_pairs
    return group


def score_group(scorer: Scorer, group: list[ChunkWork], max_attempts: int) -> list[np.ndarray]:
    """One engine call for the group; if it fails, each chunk is scored (and retried) on its own."""
    together = score_together(scorer, [work.prepared for work in group])
    if together is not None:
        return together
    return [score_with_retries(scorer, work, max_attempts) for work in group]


def run_local(
    chunks: Iterable[Chunk],
    load: Callable[[Chunk], ChunkWork],
    scorer: Scorer,
    finish: Callable[[ChunkWork, np.ndarray], None],
    max_attempts: int,
    prefetch: int,
    engine_batch_pairs: int | None = None,
) -> None:
    """Score chunks in order; `load` (read + tokenize) for the next chunks overlaps the engine's work."""
    in_flight: deque[Future[ChunkWork]] = deque()

    def score_next() -> None:
        group = _take_ready_group(in_flight, engine_batch_pairs)
        for work, scores in zip(group, score_group(scorer, group, max_attempts), strict=True):
            finish(work, scores)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batchrank-prepare") as pool:
        try:
            for chunk in chunks:
                in_flight.append(pool.submit(load, chunk))
                if len(in_flight) > prefetch:
                    score_next()
            while in_flight:
                score_next()
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

    prefetch = spec.run.prefetch_chunks
    if spec.run.engine_batch_pairs:  # enough chunks prepared ahead to fill a group while the engine works
        prefetch = max(prefetch, 2 * math.ceil(spec.run.engine_batch_pairs / spec.run.chunk_size))
    run_local(pending, io.load, scorer, finish, spec.run.max_attempts, prefetch, spec.run.engine_batch_pairs)
    return {"executor": "local", "scorer": getattr(scorer, "describe", dict)()}
