"""The batchrank and fp8 systems of the throughput bench, in their own process: run_job on the Parquet input
(checks, plan, tokenize, score, ranked parts, report) with the config's model.engine and run settings. The local
executor reuses one engine for every dataset (keep_engine); the Ray executor starts its actors in each run_job (one
Ray cluster for all of them). fp8 adds model.engine.quantization fp8 (vLLM's online dynamic FP8; dtype bfloat16)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from batchrank.bench.memory import gpu_memory_used_mib, wait_for_gpu_memory
from batchrank.bench.system_common import Emit, each_dataset, write_scores


def batchrank_spec(config: dict[str, Any], system: str, pairs: str, output: str) -> Any:
    """The JobSpec the system runs: the config's model.engine and run settings (fp8's additions for fp8)."""
    from batchrank.spec import parse_spec

    engine, dtype = dict(config["engine"]), config["dtype"]
    if system == "fp8":
        engine.update(config["fp8_engine"])
        dtype = config["fp8_dtype"]
    run = dict(config["run"])
    if config["chunk_size"]:
        run["chunk_size"] = config["chunk_size"]
    tree = {"input": {"path": pairs}, "output": {"path": output}, "run": run,
            "model": {"path": config["model"], "dtype": dtype, "max_model_len": config["max_model_len"],
                      "engine": engine}}
    return parse_spec(tree, "bench")


def _start_ray() -> None:
    """One Ray cluster for every run_job of this process (each still starts its own actors, and gives them
    batchrank's environment itself): what RayExecutor would start."""
    import ray

    ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False)


def _batchrank_dataset(config: dict[str, Any], system: str, name: str, pairs_path: str, on_ray: bool) -> dict[str, Any]:
    import polars as pl

    from batchrank.job import run_job

    spec = batchrank_spec(config, system, pairs_path, str(Path(config["work"]) / f"out-{system}-{name}"))
    started = time.perf_counter()
    # Ray: the actors stop their engines at the job's end (an engine kept in a killed actor would be orphaned).
    job = run_job(spec, overwrite=True, keep_engine=not on_ray)
    wall = time.perf_counter() - started
    info, model, execution = job.run_info, job.run_info["model"], job.run_info["execution"]
    pairs = pl.read_parquet(pairs_path, columns=["query_id", "doc_id"])
    scored = pl.read_parquet(f"{job.output}/scores/*.parquet", columns=["query_id", "doc_id", "score"])
    scores = pairs.join(scored, on=["query_id", "doc_id"], how="left", maintain_order="left")["score"]
    hits = model.get("prefix_cache_hit_tokens", model.get("prefix_cache_hit_share", 0.0) * info["prompt_tokens"])
    return {
        "pairs": info["pairs"], "prompt_tokens": info["prompt_tokens"],
        "seconds": info["pairs"] / info["pairs_per_second_this_run"], "run_job_seconds": wall,
        "engine_start_seconds": model.get("engine_start_seconds"), "prefix_cache_hit_tokens": hits,
        "executor": execution["executor"], "engines_per_gpu": execution.get("engines_per_gpu", 1),
        "workers": execution.get("workers", 1), "engine_drains": execution.get("engine_drains"),
        "chunks": info["chunks"], "chunk_size": spec.run.chunk_size, "truncated_pairs": info["truncated_pairs"],
        "engine_arguments": model.get("engine_arguments"), "run_settings": spec.run.model_dump(mode="json"),
        "scores_path": write_scores(config, system, name, pairs, scores),
    }


def run_batchrank(config: dict[str, Any], system: str, emit: Emit) -> None:
    """Warm up (local executor: the engine every dataset reuses), then run_job on each dataset of this system."""
    from batchrank.execute.placement import choose_executor
    from batchrank.job import count_gpus, run_job
    from batchrank.model_dir import ModelDirectory
    from batchrank.scoring.engine import shutdown_engines

    warm_spec = batchrank_spec(config, system, config["warmup"], str(Path(config["work"]) / f"out-{system}-warmup"))
    on_ray = choose_executor(warm_spec, count_gpus(), ModelDirectory.open(config["model"]).weight_bytes) == "ray"
    result: dict[str, Any] = {
        "clock": "run.json's: engine(s) up -> last part written (run_job_seconds: the whole run_job call)",
        "warmup": "none: each run_job starts fresh actors" if on_ray else
        f"run_job on {config['warmup_pairs']} other pairs with the same engine"}
    if on_ray:
        _start_ray()
    else:
        warm = run_job(warm_spec, overwrite=True, keep_engine=True)  # starts the engine every dataset reuses
        result["engine_start_seconds"] = warm.run_info["model"].get("engine_start_seconds")
    baseline = gpu_memory_used_mib()

    def score_one(name: str, path: str) -> dict[str, Any]:
        if on_ray:  # the last job's actors are killed as it ends: their GPU memory must be back for the next ones
            wait_for_gpu_memory(baseline)
        return _batchrank_dataset(config, system, name, path, on_ray)

    each_dataset(config, system, emit, result, score_one)
    shutdown_engines()
