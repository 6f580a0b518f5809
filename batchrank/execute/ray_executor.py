"""The Ray executor: a pool of actors, each hosting one engine and the same ChunkPipeline as the local executor.

The driver hands out chunk descriptors only; each actor reads its chunk from the shared input, scores it and writes
the part itself (atomically, to the shared output path), so no text or scores cross the object store. Actors join
as soon as their engine is up (ray_pool.py). A chunk whose scoring raised is retried up to `run.max_attempts`
times, then the job stops after the parts already written are safe; a chunk whose actor was lost (killed,
preempted, its node gone, silent past run.stall_timeout) goes back to the queue without using up an attempt, and
the actor is replaced, up to run.max_lost_workers.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Any

from batchrank.execute.base import Dispatch, ExecutionSummary, Executor, WorkerLost
from batchrank.execute.placement import Placement, plan_placement
from batchrank.execute.ray_env import RayUnavailable, job_environment_variables, ray_session, worker_environment
from batchrank.execute.ray_pool import ActorSlot, WorkerPool, gone_errors, lost_reason
from batchrank.execute.ray_worker import ScoringWorker, worker_processes
from batchrank.io.parts import PartWritten
from batchrank.plan import Chunk
from batchrank.scoring.base import EnginePlacement

log = logging.getLogger("batchrank")

__all__ = ["RayExecutor", "RayUnavailable", "worker_processes"]

POLL_S = 1.0  # the longest the driver waits before it checks its actors' heartbeats and its deadlines
ENGINE_STOP_TIMEOUT_S = 120.0
# Interrupted (Ctrl-C, SIGTERM, `ray job stop`, which sends SIGKILL 3 s after its SIGTERM): the failure record
# must be written before that, so the engines get this long to stop before their actors are killed.
INTERRUPTED_STOP_TIMEOUT_S = 1.0


def lost_worker_bound(spec_value: int | str, workers: int) -> int:
    """run.max_lost_workers as a number: auto is twice the workers, at least 3 (as Spark bounds lost executors)."""
    return max(3, 2 * workers) if spec_value == "auto" else int(spec_value)


class _ActorDispatch(Dispatch):
    def __init__(self, executor: RayExecutor, pool: WorkerPool, max_lost: int):
        super().__init__(executor.context, executor.on_part, max_lost)
        self.executor, self.pool = executor, pool
        self.scoring_started = False

    def start(self, worker: Any, chunk: Chunk, retry: bool) -> Hashable:
        return worker.actor.process.remote(chunk, retry)

    def wait(self, handles: list[Hashable]) -> list[Hashable]:
        events = self.pool.poll(handles, POLL_S)
        for slot in events.joined:
            log.info("%s ready: scoring on node %s", slot, str(slot.where.get("node", ""))[:12])
            if not self.scoring_started:
                self.scoring_started = True
                self.executor.on_scoring_started()  # throughput counts from the first engine up
                self.timing.begin()  # and so does the driver's own timing (docs/scale.md)
            self.add_worker(slot)
        for slot, reason in events.lost:
            self.lose_worker(slot, reason)
        return events.finished

    def result(self, handle: Hashable) -> PartWritten:
        import ray
        from ray.exceptions import RayTaskError

        try:
            return ray.get(handle)
        except gone_errors() as error:
            raise WorkerLost(lost_reason(error)) from error
        except RayTaskError as error:
            raise (error.cause if error.cause is not None else error) from None

    def replace(self, worker: Any) -> None:
        self.pool.retire(worker)
        self.pool.request()


class RayExecutor(Executor):
    name = "ray"

    def run(self, pending: list[Chunk]) -> ExecutionSummary:
        with ray_session(self.context.spec.run.ray_address or None) as ray:
            return self._run(ray, pending)

    def _run(self, ray: Any, pending: list[Chunk]) -> ExecutionSummary:
        spec = self.context.spec
        placement: Placement = plan_placement(spec, float(ray.cluster_resources().get("GPU", 0)),
                                              self.context.model.weight_bytes)
        workers = min(placement.workers, len(pending))
        window = spec.run.chunks_in_flight_per_worker
        environment = worker_environment(job_environment_variables(ray))
        # window chunk calls, a heartbeat and the final stop each get a thread of their own
        remote = ray.remote(ScoringWorker).options(max_concurrency=window + 2, max_restarts=0,
                                                   runtime_env={"env_vars": environment}, **placement.options)
        context, factory = ray.put(self.context), ray.put(self.factory)
        engine = EnginePlacement(placement.engines_per_gpu)
        pool = WorkerPool(ray, lambda name: remote.remote(context, factory, engine, name), placement.options,
                          spec.run.stall_timeout, spec.run.worker_start_timeout)
        log.info("ray: %d worker(s) with %s each (%d engine(s) per GPU), %d chunk(s) to score", workers,
                 placement.options, placement.engines_per_gpu, len(pending))
        pool.request(workers)
        pool.say_what_fits(workers)
        dispatch = _ActorDispatch(self, pool, lost_worker_bound(spec.run.max_lost_workers, workers))
        interrupted = False
        try:
            dispatch.run([], pending)
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            descriptions = pool.stop(INTERRUPTED_STOP_TIMEOUT_S if interrupted else ENGINE_STOP_TIMEOUT_S)
        for name, numbers in dispatch.per_worker().items():
            log.info("%s: %d pairs, %.1f pairs/s", name, numbers["pairs"], numbers["pairs_per_second"])
        description = combined_description(descriptions)
        details = {"worker_resources": placement.options, "engines_per_gpu": placement.engines_per_gpu,
                   "engine_drains": description.pop("engine_drains", None), "dispatch": dispatch.timing.to_json(),
                   "worker_nodes": worker_nodes(pool), "lost_workers": [vars(lost) for lost in dispatch.lost]}
        return ExecutionSummary(self.name, workers, dispatch.per_worker(), sorted(dispatch.retried), description,
                                details)


def worker_nodes(pool: WorkerPool) -> dict[str, str]:
    """Each worker that started, and the node it ran on (Ray's node id, shortened)."""
    slots: list[ActorSlot] = pool.working + pool.retired
    return {slot.name: str(slot.where.get("node", ""))[:12] for slot in slots if slot.where}


def combined_description(descriptions: list[dict[str, Any]]) -> dict[str, Any]:
    """The first actor's description (the engines are alike), with what each engine counted summed over all of
    them: prefix-cache hits, prompt tokens sent, engine drains."""
    if not descriptions:
        return {}
    combined = dict(descriptions[0])
    for key in ("prefix_cache_hit_tokens", "prompt_tokens_sent", "engine_drains"):
        if all(key in d for d in descriptions):
            combined[key] = sum(d[key] for d in descriptions)
    if combined.get("prompt_tokens_sent"):
        combined["prefix_cache_hit_share"] = round(combined["prefix_cache_hit_tokens"] / combined["prompt_tokens_sent"], 4)
    return combined

