"""One system of scripts/bench.py, in its own process: `python scripts/bench_systems.py SYSTEM CONFIG.json`.

Each system starts its engine once and scores every dataset named for it in the config, after a warm-up on other
pairs, writing each dataset's scores to WORK/scores/SYSTEM-DATASET.parquet (input order) and printing a result line
(RESULT_MARK + JSON, everything measured so far) after each dataset, so a run cut short keeps what it measured.

  batchrank  run_job on the Parquet input (checks, plan, tokenize, score, ranked parts, report) with the config's
             model.engine and run settings; the local executor reuses one engine for every dataset (keep_engine),
             the Ray executor starts its actors in each run_job (one Ray cluster for all of them)
  fp8        the same with model.engine.quantization fp8 (vLLM's online dynamic FP8; dtype bfloat16)
  vllm       plain vLLM: the model card's prompt text for every pair in input order, one llm.classify per dataset,
             vLLM's default engine arguments
  hf         plain transformers: AutoModelForCausalLM with SDPA, left-padded batches sorted by length, softmax over
             the "no"/"yes" logits at the last position
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import card_prompt, gpu_memory_used_mib, setdefault_environment, wait_for_gpu_memory

RESULT_MARK = "BENCH_RESULT "
SYSTEMS = ("batchrank", "fp8", "vllm", "hf")
Emit = Callable[[dict[str, Any]], None]


def _device_is_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def _write_scores(config: dict[str, Any], system: str, dataset: str, ids: Any, scores: Any) -> str:
    import polars as pl

    path = Path(config["work"]) / "scores" / f"{system}-{dataset}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    ids.select("query_id", "doc_id").with_columns(score=pl.Series(scores, dtype=pl.Float64)).write_parquet(path)
    return str(path)


def _texts(path: str, limit: int = 0) -> tuple[Any, list[str]]:
    import polars as pl

    pairs = pl.read_parquet(path)  # input order: grouped by query, as MS MARCO candidates come
    if limit:
        pairs = pairs.head(limit)
    return pairs, [card_prompt(q, d) for q, d in zip(pairs["query"], pairs["document"], strict=True)]


def _each_dataset(config: dict[str, Any], system: str, emit: Emit, result: dict[str, Any],
                  score_one: Callable[[str, str], dict[str, Any]]) -> None:
    """score_one(name, pairs path) for every dataset of this system; a failed dataset is recorded, not fatal."""
    result["datasets"] = {}
    for name in config["systems"][system]:
        try:
            result["datasets"][name] = score_one(name, config["datasets"][name])
        except Exception as error:  # noqa: BLE001 - reported in the table; the other datasets still run
            logging.exception("%s on %s failed", system, name)
            result["datasets"][name] = {"failed": True, "reason": f"{type(error).__name__}: {error}"[:300]}
        emit(result)


# ---------------------------------------------------------------------------------------------------------------
# batchrank (and its FP8 variant)


def batchrank_spec(config: dict[str, Any], system: str, pairs: str, output: str) -> Any:
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
        "scores_path": _write_scores(config, system, name, pairs, scores),
    }


def run_batchrank(config: dict[str, Any], system: str, emit: Emit) -> None:
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

    _each_dataset(config, system, emit, result, score_one)
    shutdown_engines()


# ---------------------------------------------------------------------------------------------------------------
# plain vLLM and plain transformers


def run_vllm(config: dict[str, Any], system: str, emit: Emit) -> None:
    from vllm import LLM

    from batchrank.scoring.engine_args import CPU_KV_CACHE_BYTES, QWEN3_YES_NO_OVERRIDES

    arguments: dict[str, Any] = {"model": config["model"], "runner": "pooling", "dtype": config["dtype"],
                                 "max_model_len": config["max_model_len"], "hf_overrides": QWEN3_YES_NO_OVERRIDES}
    if _device_is_cpu():
        arguments["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES  # vLLM's CPU build would take most of the RAM
    started = time.perf_counter()
    llm = LLM(**arguments)
    result: dict[str, Any] = {"engine_start_seconds": time.perf_counter() - started, "engine_arguments": arguments,
                              "clock": "one llm.classify(texts) per dataset, prompt texts in input order (vLLM "
                              "tokenizes)", "warmup": f"llm.classify on {config['warmup_pairs']} other pairs"}
    llm.classify(_texts(config["warmup"])[1], use_tqdm=False)

    def score_one(name: str, path: str) -> dict[str, Any]:
        pairs, texts = _texts(path)
        started = time.perf_counter()
        outputs = llm.classify(texts, use_tqdm=False)
        seconds = time.perf_counter() - started
        scores = [float(o.outputs.probs[-1]) for o in outputs]  # the yes/no head: one probability, P(yes)
        return {"pairs": len(outputs), "prompt_tokens": sum(len(o.prompt_token_ids) for o in outputs),
                "seconds": seconds, "engine_start_seconds": result["engine_start_seconds"],
                "prefix_cache_hit_tokens": sum(getattr(o, "num_cached_tokens", 0) or 0 for o in outputs),
                "scores_path": _write_scores(config, system, name, pairs, scores)}

    _each_dataset(config, system, emit, result, score_one)
    llm.llm_engine.engine_core.shutdown()


def run_hf(config: dict[str, Any], system: str, emit: Emit) -> None:
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cpu" if _device_is_cpu() else "cuda"
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(config["model"], padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(config["model"], dtype=getattr(torch, config["dtype"]),
                                                 attn_implementation="sdpa").to(device).eval()
    result: dict[str, Any] = {"engine_start_seconds": time.perf_counter() - started, "batch": config["hf_batch"],
                              "clock": "tokenize, sort by length, padded batches, P(yes)",
                              "warmup": f"the same on {config['warmup_pairs']} other pairs"}
    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")

    def score(prompts: list[str]) -> tuple[np.ndarray, int]:
        lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]]
        order = np.argsort(lengths, kind="stable")  # sorted by length: the least padding
        out = np.empty(len(prompts))
        with torch.inference_mode():
            for i in range(0, len(prompts), config["hf_batch"]):
                index = order[i : i + config["hf_batch"]]
                enc = tokenizer([prompts[j] for j in index], padding=True, return_tensors="pt").to(device)
                positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
                logits = model(**enc, position_ids=positions, logits_to_keep=1).logits[:, -1, [no, yes]]
                out[index] = torch.softmax(logits.float(), dim=-1)[:, 1].cpu().numpy()
        if device == "cuda":
            torch.cuda.synchronize()
        return out, sum(lengths)

    def score_one(name: str, path: str) -> dict[str, Any]:
        pairs, texts = _texts(path, config["hf_max_pairs"])
        started = time.perf_counter()
        scores, tokens = score(texts)
        return {"pairs": len(texts), "prompt_tokens": tokens, "seconds": time.perf_counter() - started,
                "engine_start_seconds": result["engine_start_seconds"],
                "scores_path": _write_scores(config, system, name, pairs, scores)}

    score(_texts(config["warmup"])[1])
    _each_dataset(config, system, emit, result, score_one)


def main(argv: list[str]) -> None:
    system, config_path = argv
    if system not in SYSTEMS:
        raise SystemExit(f"unknown system {system!r}; one of {', '.join(SYSTEMS)}")
    setdefault_environment()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    config = json.loads(Path(config_path).read_text())

    def emit(result: dict[str, Any]) -> None:
        versions = {m: str(getattr(sys.modules[m], "__version__", "?")) for m in ("vllm", "torch", "transformers")
                    if m in sys.modules}
        if not _device_is_cpu():
            import torch

            result["device"] = torch.cuda.get_device_name(0)
        line = json.dumps({**result, "system": system, "versions": versions}, default=str)
        sys.stdout.write(RESULT_MARK + line + "\n")
        sys.stdout.flush()

    runner = {"batchrank": run_batchrank, "fp8": run_batchrank, "vllm": run_vllm, "hf": run_hf}[system]
    runner(config, system, emit)
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown: the engines are shut down, and CUDA builds of vLLM may abort at exit


if __name__ == "__main__":
    main(sys.argv[1:])
