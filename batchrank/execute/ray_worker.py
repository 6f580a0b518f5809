"""The Ray actor that scores: one engine and the same ChunkPipeline as the local executor, its log lines kept for
the job's engine.log, and a heartbeat the driver uses to tell a silent actor from a busy one."""

from __future__ import annotations

import os
from typing import Any

from batchrank.engine_log import EngineLog
from batchrank.io.parts import PartWritten
from batchrank.pipeline.chunk import ChunkPipeline
from batchrank.pipeline.context import JobContext
from batchrank.plan import Chunk
from batchrank.scoring.base import EnginePlacement, ScorerFactory

# What a worker hands over at the end: the rest of its log lines, up to this much.
FINAL_LOG_BYTES = 16 << 20


class ScoringWorker:
    """One engine and its pipeline. A threaded actor: chunks are read and tokenized while others are in the
    engine, whose own thread keeps it fed; a heartbeat is answered from another thread meanwhile."""

    def __init__(self, context: JobContext, factory: ScorerFactory, placement: EnginePlacement, name: str):
        # Before the engine starts: vLLM reads where to log when it is imported.
        self.engine_log = EngineLog(echo=False, label=name)
        self.scorer = factory.create(context.spec, placement)
        self.pipeline = ChunkPipeline(context, self.scorer, name)

    def where(self) -> dict[str, Any]:
        """This actor's process and node (run.json, and the messages that name a worker)."""
        import ray

        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
                "ip": ray.util.get_node_ip_address()}

    def heartbeat(self) -> str:
        """The log lines written since the last heartbeat: an answer at all says the actor is alive."""
        return self.engine_log.read_new()

    def process(self, chunk: Chunk, retry: bool) -> PartWritten:
        return self.pipeline.process(chunk, retry)

    def finish(self) -> dict[str, Any]:
        """Stop the engine before the actor is killed (ray.kill alone would orphan vLLM's engine processes and the
        GPU memory they hold); returns the engine's description and the last log lines."""
        from batchrank.scoring.engine import shutdown_engines

        description = {**self.scorer.describe(), "engine_drains": self.pipeline.engine.drains}
        try:
            self.pipeline.close()
            self.scorer.close()
            shutdown_engines()
        finally:
            lines = self.engine_log.read_new(FINAL_LOG_BYTES)
            self.engine_log.close(None)
        return {"description": description, "log": lines}


def worker_processes() -> list[Any]:
    """This machine's Ray actor processes that host batchrank engines (Ray names each after its actor class), as
    psutil.Process objects: for operators and tests that need to find, watch or kill one."""
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if any(ScoringWorker.__name__ in part for part in process.info["cmdline"] or []):
                found.append(process)
        except psutil.Error:
            continue
    return found
