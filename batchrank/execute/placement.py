"""Where engines go: how many share a GPU, how many Ray actors, and the resources each actor asks for.

A reranker as small as Qwen3-Reranker-0.6B leaves an H100 idle more than half the time behind one engine: each
engine step waits on that engine's CPU work (scheduling, preparing inputs, handing out results). Two or three
engines on the same GPU, each in its own Ray actor, fill those gaps (docs/perf-notes.md has the measurements).
Engines that share a GPU get a fixed KV-cache budget each (scoring/engine.py) instead of vLLM's memory profiling,
which assumes it is alone on the GPU while it profiles, so that they can start together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from batchrank.errors import SpecError
from batchrank.spec import JobSpec

log = logging.getLogger(__name__)

GIB = 1 << 30
# auto: engines per GPU by the size of the weights. Measured on an H100 (docs/perf-notes.md): two engines
# score the 0.6B shape 2.1x faster than plain vLLM, one engine 1.2x.
AUTO_SHARED_MAX_WEIGHT_BYTES = 4 * GIB
AUTO_ENGINES_PER_SMALL_MODEL = 2
MEMORY_KEYS = frozenset({"gpu_memory_utilization", "kv_cache_memory_bytes"})


@dataclass(frozen=True)
class Placement:
    engines_per_gpu: int
    workers: int  # Ray actors, one engine each
    options: dict[str, Any]  # each actor's Ray resources


def tensor_parallel_size(spec: JobSpec) -> int:
    return int(spec.model.engine.get("tensor_parallel_size", 1))


def resolve_engines_per_gpu(spec: JobSpec, gpus_available: float, weight_bytes: int) -> int:
    """run.engines_per_gpu as a number: 1 without GPUs, with tensor parallelism, or when memory is set by hand."""
    setting = spec.run.engines_per_gpu
    if gpus_available <= 0:
        if setting not in ("auto", 1):
            log.warning("run.engines_per_gpu: %s ignored: no GPUs, each engine runs on CPUs", setting)
        return 1
    if setting != "auto":
        if setting > 1 and tensor_parallel_size(spec) > 1:
            raise SpecError("run.engines_per_gpu > 1 needs model.engine.tensor_parallel_size 1: an engine that "
                            "spans GPUs can't share them")
        return int(setting)
    if tensor_parallel_size(spec) > 1 or MEMORY_KEYS & spec.model.engine.keys():
        return 1
    return AUTO_ENGINES_PER_SMALL_MODEL if weight_bytes <= AUTO_SHARED_MAX_WEIGHT_BYTES else 1


def resolve_worker_count(spec: JobSpec, cluster_gpus: float, engines_per_gpu: int) -> int:
    if spec.run.num_workers != "auto":
        return int(spec.run.num_workers)
    return max(1, int(cluster_gpus * engines_per_gpu // tensor_parallel_size(spec)))


def worker_options(spec: JobSpec, cluster_gpus: float, engines_per_gpu: int) -> dict[str, Any]:
    """Ray resources per actor: its engine's GPUs (a fraction when engines share one), or one CPU."""
    if spec.run.worker_resources is not None:
        resources = spec.run.worker_resources
        return {"num_gpus": resources.num_gpus, "num_cpus": resources.num_cpus}
    if cluster_gpus:
        return {"num_gpus": round(tensor_parallel_size(spec) / engines_per_gpu, 4), "num_cpus": 1}
    return {"num_gpus": 0, "num_cpus": 1}


def plan_placement(spec: JobSpec, cluster_gpus: float, weight_bytes: int) -> Placement:
    engines_per_gpu = resolve_engines_per_gpu(spec, cluster_gpus, weight_bytes)
    return Placement(engines_per_gpu, resolve_worker_count(spec, cluster_gpus, engines_per_gpu),
                     worker_options(spec, cluster_gpus, engines_per_gpu))


def choose_executor(spec: JobSpec, gpus: int, weight_bytes: int) -> str:
    """`auto` means Ray on a Ray cluster, with several GPUs or with engines sharing a GPU; one local engine
    otherwise. `gpus`: this machine's GPUs (job.count_gpus)."""
    import os

    if spec.run.executor != "auto":
        return spec.run.executor
    if spec.run.ray_address or os.environ.get("RAY_ADDRESS"):
        return "ray"
    if gpus > 1 or (gpus == 1 and resolve_engines_per_gpu(spec, gpus, weight_bytes) > 1):
        return "ray"
    return "local"
