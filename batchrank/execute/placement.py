"""Where engines go: how many share a GPU, how many Ray actors, and the GPU memory each engine may take.

A reranker as small as Qwen3-Reranker-0.6B leaves an H100 idle more than half the time behind one engine: each
engine step waits on that engine's CPU work (scheduling, preparing inputs, handing out results). Two or three
engines on the same GPU, each in its own Ray actor, fill those gaps (docs/perf-notes.md has the measurements).
Engines that share a GPU get a fixed KV-cache budget each instead of vLLM's memory profiling, which assumes it is
alone on the GPU while it profiles, so that they can start together.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from batchrank.errors import SpecError
from batchrank.spec import JobSpec

log = logging.getLogger(__name__)

GIB = 1 << 30
# auto: engines per GPU by the size of the weights. Measured on an H100 (docs/perf-notes.md): two engines
# score the 0.6B shape 2.1x faster than plain vLLM, one engine 1.2x.
AUTO_SHARED_MAX_WEIGHT_BYTES = 4 * GIB
AUTO_ENGINES_PER_SMALL_MODEL = 2
# The share of a GPU's memory that co-located engines split between them (vLLM's own default utilization).
SHARED_GPU_UTILIZATION = 0.9
MEMORY_KEYS = {"gpu_memory_utilization", "kv_cache_memory_bytes"}


def weight_bytes(model_path: str) -> int:
    """Bytes of the checkpoint's weight files (what the engine loads, give or take a dtype conversion)."""
    root = Path(model_path)
    files = [*root.glob("*.safetensors"), *root.glob("*.bin"), *root.glob("*.pt")]
    return sum(f.stat().st_size for f in files)


def tensor_parallel_size(spec: JobSpec) -> int:
    return int(spec.model.engine.get("tensor_parallel_size", 1))


def resolve_engines_per_gpu(spec: JobSpec, gpus_available: float) -> int:
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
    return AUTO_ENGINES_PER_SMALL_MODEL if weight_bytes(spec.model.path) <= AUTO_SHARED_MAX_WEIGHT_BYTES else 1


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


def text_config(model_path: str) -> dict[str, Any]:
    """The language model's part of config.json (multimodal configs nest it under text_config)."""
    config = json.loads((Path(model_path) / "config.json").read_text())
    return config.get("text_config", config)


def kv_cache_bytes_per_token(model_path: str, dtype_bytes: int = 2) -> int:
    """Keys and values of every layer for one token, from config.json (bf16/fp16 cache by default)."""
    config = text_config(model_path)
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    kv_heads = config.get("num_key_value_heads", heads)
    return 2 * config["num_hidden_layers"] * kv_heads * head_dim * dtype_bytes


def shared_gpu_kv_cache_bytes(model_path: str, engines_per_gpu: int, gpu_total_bytes: int,
                              max_model_len: int | None) -> int:
    """The KV cache one of `engines_per_gpu` engines may take: its share of the GPU less weights and a reserve
    for activations and CUDA graphs. Refuses a share that can't hold one max_model_len sequence (None: the
    model's own limit, as vLLM takes it)."""
    if max_model_len is None:
        max_model_len = int(text_config(model_path).get("max_position_embeddings", 32768))
    weights = weight_bytes(model_path)
    share = SHARED_GPU_UTILIZATION * gpu_total_bytes / engines_per_gpu
    reserve = 3 * GIB + weights // 4
    kv_bytes = int(share - weights - reserve)
    needed = kv_cache_bytes_per_token(model_path) * max_model_len
    if kv_bytes < needed:
        raise SpecError(
            f"run.engines_per_gpu {engines_per_gpu}: each engine's share of the GPU's {gpu_total_bytes / GIB:.0f} "
            f"GiB leaves {max(kv_bytes, 0) / GIB:.1f} GiB for its KV cache after {weights / GIB:.1f} GiB of weights, "
            f"and one {max_model_len}-token sequence needs {needed / GIB:.1f} GiB; lower run.engines_per_gpu or "
            "model.max_model_len"
        )
    return kv_bytes
