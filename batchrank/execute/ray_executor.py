"""The Ray executor: a pool of actors, each hosting one engine and the same ChunkPipeline as the local executor.

The driver hands out chunk descriptors only; each actor reads its chunk from the shared input, scores it and writes
the part itself (atomically, to the shared output path), so no text or scores cross the object store. A chunk whose
actor died goes back to the queue and the actor is replaced; a chunk whose scoring raised is retried up to
`run.max_attempts` times, then the job stops after the parts already written are safe.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable
from typing import Any

from batchrank.errors import RunFailure
from batchrank.execute.base import Dispatch, ExecutionSummary, Executor, WorkerLost, short_error
from batchrank.execute.placement import Placement, plan_placement
from batchrank.io.parts import PartWritten
from batchrank.pipeline.chunk import ChunkPipeline
from batchrank.pipeline.context import JobContext
from batchrank.plan import Chunk
from batchrank.scoring.base import EnginePlacement, ScorerFactory

log = logging.getLogger("batchrank")

# What workers need from the driver's environment: hub off, vLLM's settings, the import path, and where the object
# store is (never its secrets, which would sit in the job's runtime_env: each node needs its own credentials).
FORWARDED_ENVIRONMENT = (
    "HF_HUB_OFFLINE", "VLLM_USE_FLASHINFER_SAMPLER", "PYTHONPATH", "VLLM_CPU_KVCACHE_SPACE",
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION",
)


class RayUnavailable(RuntimeError):
    """Ray could not start or reach its cluster (before any chunk was handed out)."""


class ScoringWorker:
    """One engine and its pipeline. A threaded actor: chunks are read and tokenized while others are in the
    engine, whose own thread keeps it fed."""

    def __init__(self, context: JobContext, factory: ScorerFactory, placement: EnginePlacement, name: str):
        self.scorer = factory.create(context.spec, placement)
        self.pipeline = ChunkPipeline(context, self.scorer, name)

    def pid(self) -> int:
        return os.getpid()

    def describe(self) -> dict[str, Any]:
        return {**self.scorer.describe(), "engine_drains": self.pipeline.engine.drains}

    def process(self, chunk: Chunk, retry: bool) -> PartWritten:
        return self.pipeline.process(chunk, retry)

    def shutdown(self) -> None:
        """Stop the engine before the actor is killed: ray.kill alone would orphan vLLM's engine processes (and the
        GPU memory they hold), whether or not the driver keeps its own engines for another job."""
        from batchrank.scoring.engine import shutdown_engines

        self.pipeline.close()
        self.scorer.close()
        shutdown_engines()


def worker_processes() -> list[Any]:
    """This machine's Ray actor processes that host batchrank engines (Ray names each after its actor class), as
    psutil.Process objects: for operators and tests that need to find, watch or kill one."""
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(ScoringWorker.__name__ in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


class _ActorDispatch(Dispatch):
    def __init__(self, executor: RayExecutor, new_actor: Any):
        super().__init__(executor.context, executor.on_part)
        self.new_actor = new_actor
        self.names: dict[Any, str] = {}

    def start(self, worker: Any, chunk: Chunk, retry: bool) -> Hashable:
        return worker.process.remote(chunk, retry)

    def wait(self, handles: list[Hashable]) -> list[Hashable]:
        import ray

        ready, _ = ray.wait(handles, num_returns=1)
        return ready

    def result(self, handle: Hashable) -> PartWritten:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        try:
            return ray.get(handle)
        except RayActorError as error:
            raise WorkerLost(short_error(error)) from error
        except RayTaskError as error:
            raise (error.cause if error.cause is not None else error) from None

    def replace(self, worker: Any) -> Any:
        return self.new_actor()


class RayExecutor(Executor):
    name = "ray"

    def run(self, pending: list[Chunk]) -> ExecutionSummary:
        import ray

        spec = self.context.spec
        address = spec.run.ray_address or os.environ.get("RAY_ADDRESS")
        started_here = not ray.is_initialized()
        if started_here:
            environment = {name: os.environ[name] for name in FORWARDED_ENVIRONMENT if name in os.environ}
            environment.setdefault("HF_HUB_OFFLINE", "1")
            # Workers' lines reach the driver's stderr (log_to_driver): vLLM's warnings only, unless -v. (The
            # driver's log file is not forwarded: a worker on another node has no such path.)
            environment["VLLM_LOGGING_LEVEL"] = "DEBUG" if os.environ.get("VLLM_LOGGING_LEVEL") == "DEBUG" else "WARNING"
            try:
                ray.init(address=address, log_to_driver=True, runtime_env={"env_vars": environment})
            except Exception as error:  # noqa: BLE001 - nothing has run yet: the caller decides what to do instead
                raise RayUnavailable(short_error(error)) from error
        try:
            return self._run(ray, pending)
        finally:
            if started_here:
                ray.shutdown()

    def _run(self, ray: Any, pending: list[Chunk]) -> ExecutionSummary:
        from ray.exceptions import RayActorError, RayTaskError

        spec = self.context.spec
        placement: Placement = plan_placement(spec, float(ray.cluster_resources().get("GPU", 0)),
                                              self.context.model.weight_bytes)
        workers = min(placement.workers, len(pending))
        window = spec.run.chunks_in_flight_per_worker
        remote = ray.remote(ScoringWorker).options(max_concurrency=window + 1, max_restarts=0, **placement.options)
        context, factory = ray.put(self.context), ray.put(self.factory)
        engine = EnginePlacement(placement.engines_per_gpu)
        every_actor: list[Any] = []

        def new_actor() -> Any:
            actor = remote.remote(context, factory, engine, f"worker-{len(every_actor)}")
            every_actor.append(actor)
            return actor

        actors = [new_actor() for _ in range(workers)]
        log.info("ray: %d worker(s) with %s each (%d engine(s) per GPU), %d chunk(s) to score", workers,
                 placement.options, placement.engines_per_gpu, len(pending))
        dispatch = _ActorDispatch(self, new_actor)
        try:
            try:
                ray.get([actor.pid.remote() for actor in actors])  # engines started: throughput counts from here
            except (RayActorError, RayTaskError) as error:
                raise RunFailure(f"the Ray workers could not start their engines: {short_error(error)}") from None
            self.on_scoring_started()
            actors = dispatch.run(actors, pending)
            description = combined_description(ray.get([actor.describe.remote() for actor in actors]))
        finally:
            _stop_actors(ray, actors)
        for name, numbers in dispatch.per_worker().items():
            log.info("%s: %d pairs, %.1f pairs/s", name, numbers["pairs"], numbers["pairs_per_second"])
        details = {"worker_resources": placement.options, "engines_per_gpu": placement.engines_per_gpu,
                   "engine_drains": description.pop("engine_drains", None), "dispatch": dispatch.timing.to_json()}
        return ExecutionSummary(self.name, workers, dispatch.per_worker(), sorted(dispatch.retried), description,
                                details)


def combined_description(descriptions: list[dict[str, Any]]) -> dict[str, Any]:
    """The first actor's description (the engines are alike), with what each engine counted summed over all of
    them: prefix-cache hits, prompt tokens sent, engine drains."""
    combined = dict(descriptions[0])
    for key in ("prefix_cache_hit_tokens", "prompt_tokens_sent", "engine_drains"):
        if all(key in d for d in descriptions):
            combined[key] = sum(d[key] for d in descriptions)
    if combined.get("prompt_tokens_sent"):
        combined["prefix_cache_hit_share"] = round(combined["prefix_cache_hit_tokens"] / combined["prompt_tokens_sent"], 4)
    return combined


def _stop_actors(ray: Any, actors: list[Any]) -> None:
    from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

    for reference in [actor.shutdown.remote() for actor in actors]:
        try:
            ray.get(reference, timeout=120)
        except (GetTimeoutError, RayActorError, RayTaskError) as error:
            log.warning("a worker did not stop its engine cleanly: %s", short_error(error))
    for actor in actors:
        ray.kill(actor)
