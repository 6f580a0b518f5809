"""Executors: where a job's chunks are scored (base.py has the contract they share)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from batchrank.errors import RunFailure
from batchrank.execute.base import ExecutionSummary, Executor
from batchrank.execute.local import LocalExecutor
from batchrank.execute.ray_executor import RayExecutor, RayUnavailable
from batchrank.io.parts import PartWritten
from batchrank.pipeline.context import JobContext
from batchrank.plan import Chunk
from batchrank.scoring.base import ScorerFactory

log = logging.getLogger("batchrank")

EXECUTORS: dict[str, type[Executor]] = {LocalExecutor.name: LocalExecutor, RayExecutor.name: RayExecutor}


def run_executor(name: str, context: JobContext, factory: ScorerFactory, pending: list[Chunk],
                 on_part: Callable[[PartWritten], None], on_scoring_started: Callable[[], None]) -> ExecutionSummary:
    """Score the pending chunks with the named executor. When `auto` chose Ray only to share this machine's GPU(s)
    and Ray cannot start here, one local engine does the job instead (an explicit choice still fails)."""
    spec = context.spec
    try:
        return EXECUTORS[name](context, factory, on_part, on_scoring_started).run(pending)
    except RayUnavailable as error:
        if spec.run.executor == "ray" or spec.run.ray_address or os.environ.get("RAY_ADDRESS"):
            raise RunFailure(f"Ray could not start: {error}") from None
        log.warning("run.executor auto chose Ray for this machine's GPU(s), but Ray could not start: %s; "
                    "scoring with one local engine instead", error)
        return LocalExecutor(context, factory, on_part, on_scoring_started).run(pending)
