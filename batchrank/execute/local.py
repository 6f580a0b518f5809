"""The local executor: one engine in this process, fed by a few threads that read, prepare and write chunks."""

from __future__ import annotations

import logging
from collections.abc import Hashable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from batchrank.execute.base import Dispatch, ExecutionSummary, Executor
from batchrank.io.parts import PartWritten
from batchrank.pipeline.chunk import ChunkPipeline
from batchrank.plan import Chunk
from batchrank.scoring.base import EnginePlacement

log = logging.getLogger("batchrank")

WORKER = "worker-0"


class _ThreadDispatch(Dispatch):
    def __init__(self, executor: LocalExecutor, pipeline: ChunkPipeline, pool: ThreadPoolExecutor):
        super().__init__(executor.context, executor.on_part)
        self.pipeline, self.pool = pipeline, pool

    def start(self, worker: Any, chunk: Chunk, retry: bool) -> Hashable:
        return self.pool.submit(self.pipeline.process, chunk, retry)

    def wait(self, handles: list[Hashable]) -> list[Hashable]:
        done, _ = wait(handles, return_when=FIRST_COMPLETED)  # type: ignore[arg-type]
        return list(done)

    def result(self, handle: Hashable) -> PartWritten:
        assert isinstance(handle, Future)
        return handle.result()


class LocalExecutor(Executor):
    name = "local"

    def run(self, pending: list[Chunk]) -> ExecutionSummary:
        settings = self.context.spec.run
        if settings.num_workers not in ("auto", 1):
            log.warning("run.num_workers: %s is ignored: the local executor (run.executor: %s) runs one engine in "
                        "this process; set run.executor: ray for %s workers", settings.num_workers,
                        settings.executor, settings.num_workers)
        scorer = self.factory.create(self.context.spec, EnginePlacement(engines_per_gpu=1))
        pipeline = ChunkPipeline(self.context, scorer, WORKER)
        window = self.context.spec.run.chunks_in_flight_per_worker
        pool = ThreadPoolExecutor(max_workers=window, thread_name_prefix="batchrank-chunk")
        dispatch = _ThreadDispatch(self, pipeline, pool)
        self.on_scoring_started()
        try:
            dispatch.run([WORKER], pending)
        finally:
            pipeline.close()  # chunks still in the engine fail at once, so no thread waits for ever
            pool.shutdown(wait=True, cancel_futures=True)
            scorer.close()
        summary = ExecutionSummary(self.name, 1, dispatch.per_worker(), sorted(dispatch.retried), scorer.describe())
        summary.details["engine_drains"] = pipeline.engine.drains
        summary.details["dispatch"] = dispatch.timing.to_json()
        return summary
