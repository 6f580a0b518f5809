"""Where does a vLLM scoring run spend its time? A probe for issue 7's levers, on the bench's pairs and model.

Three modes, each timing the same token-id prompts (the model card's prompt, grouped by query, as batchrank
sends them) after a warm-up:

  split     one engine; the clock is split into the front end adding requests, waiting on the engine core's
            outputs, and turning those outputs into results; GPU busy % is sampled with nvidia-smi meanwhile.
            Mostly waiting + a busy GPU: the GPU is the limit. Mostly waiting + an idle GPU: the engine core's CPU
            work (scheduling, input preparation) is. Mostly adding/processing: the front end is.
  procs N   N processes, each its own engine on the same GPU with a fixed KV-cache budget (no memory profiling,
            so they may start together), each scoring 1/N of the queries; they start scoring together (a
            barrier). Pairs/s of all of them together.
  threads N N engines in one process, one thread each (their front ends share one GIL).

usage (repo root, after `python scripts/bench.py --shape 0.6b --datasets 100:200 --prepare-only --work W`):
  python scripts/engine_probe.py --work W --model W/model-0.6b --mode split
  python scripts/engine_probe.py --work W --model W/model-0.6b --mode procs --engines 2
Prints one JSON line per mode; --out appends it to a file.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from benchlib import card_prompt, setdefault_environment

from batchrank.scoring.engine_args import QWEN3_YES_NO_OVERRIDES


class GpuBusySampler(threading.Thread):
    """nvidia-smi's utilization.gpu: the share of time a kernel was running, sampled every 100 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.process: subprocess.Popen[str] | None = None

    def run(self) -> None:
        if not shutil.which("nvidia-smi"):
            return
        self.process = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "100"],
            stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.samples.append(float(line.split()[0]))
            except (ValueError, IndexError):
                pass

    def stop(self) -> float | None:
        if self.process is not None:
            self.process.terminate()
        self.join(timeout=5)
        return round(sum(self.samples) / len(self.samples), 1) if self.samples else None


def token_prompts(model: str, pairs_path: str, part: int = 0, parts: int = 1) -> list[list[int]]:
    """Token ids of the card prompt for the queries of one share (whole queries, in input order)."""
    import polars as pl
    from transformers import AutoTokenizer

    pairs = pl.read_parquet(pairs_path)
    query_rank = pairs["query_id"].rank("dense").to_numpy() - 1
    pairs = pairs.filter(pl.Series(query_rank % parts == part))
    tokenizer = AutoTokenizer.from_pretrained(model)
    texts = [card_prompt(q, d) for q, d in zip(pairs["query"], pairs["document"], strict=True)]
    return tokenizer(texts, add_special_tokens=False).input_ids


def start_llm(args: argparse.Namespace, engine: dict[str, Any]) -> Any:
    from vllm import LLM

    return LLM(model=args.model, runner="pooling", dtype=args.dtype, max_model_len=args.max_model_len,
               hf_overrides=QWEN3_YES_NO_OVERRIDES, **engine)


def classify(llm: Any, ids: list[list[int]]) -> list[float]:
    from vllm.inputs import TokensPrompt

    outputs = llm.classify([TokensPrompt(prompt_token_ids=x) for x in ids], use_tqdm=False)
    return [float(o.outputs.probs[-1]) for o in outputs]


def split_mode(args: argparse.Namespace) -> dict[str, Any]:
    ids = token_prompts(args.model, args.pairs)
    warm = token_prompts(args.model, args.warmup)
    llm = start_llm(args, json.loads(args.engine_json))
    classify(llm, warm)
    engine = llm.llm_engine
    clocks = {"add_request": 0.0, "wait_for_engine_core": 0.0, "step": 0.0}
    steps = [0]

    def timed(name: str, function: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                clocks[name] += time.perf_counter() - started
        return wrapper

    engine.add_request = timed("add_request", engine.add_request)
    engine.engine_core.get_output = timed("wait_for_engine_core", engine.engine_core.get_output)
    original_step = engine.step

    def step() -> Any:
        steps[0] += 1
        return timed("step", original_step)()

    engine.step = step
    sampler = GpuBusySampler()
    sampler.start()
    started = time.perf_counter()
    classify(llm, ids)
    seconds = time.perf_counter() - started
    busy = sampler.stop()
    result = {
        "mode": "split", "pairs": len(ids), "prompt_tokens": sum(map(len, ids)), "seconds": round(seconds, 3),
        "pairs_per_second": round(len(ids) / seconds, 1), "gpu_busy_percent": busy, "engine_steps": steps[0],
        "seconds_adding_requests": round(clocks["add_request"], 3),
        "seconds_waiting_for_engine_core": round(clocks["wait_for_engine_core"], 3),
        "seconds_processing_outputs": round(clocks["step"] - clocks["wait_for_engine_core"], 3),
        "engine": json.loads(args.engine_json),
    }
    llm.llm_engine.engine_core.shutdown()
    return result


def _proc_worker(args: argparse.Namespace, part: int, barrier: Any, results: Any) -> None:
    setdefault_environment()
    ids = token_prompts(args.model, args.pairs, part, args.engines)
    warm = token_prompts(args.model, args.warmup)
    engine = {"kv_cache_memory_bytes": args.kv_cache_gib << 30, **json.loads(args.engine_json)}
    llm = start_llm(args, engine)
    classify(llm, warm)
    barrier.wait()
    started = time.time()
    classify(llm, ids)
    results.put({"part": part, "pairs": len(ids), "tokens": sum(map(len, ids)), "start": started, "end": time.time()})
    llm.llm_engine.engine_core.shutdown()
    os._exit(0)  # CUDA builds of vLLM may abort at interpreter exit


def procs_mode(args: argparse.Namespace) -> dict[str, Any]:
    context = mp.get_context("spawn")
    barrier, results = context.Barrier(args.engines + 1), context.Queue()
    workers = [context.Process(target=_proc_worker, args=(args, i, barrier, results)) for i in range(args.engines)]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=900)
    sampler = GpuBusySampler()
    sampler.start()
    rows = [results.get(timeout=900) for _ in workers]
    busy = sampler.stop()
    for worker in workers:
        worker.join(timeout=60)
    seconds = max(r["end"] for r in rows) - min(r["start"] for r in rows)
    pairs = sum(r["pairs"] for r in rows)
    return {"mode": "procs", "engines": args.engines, "pairs": pairs, "prompt_tokens": sum(r["tokens"] for r in rows),
            "seconds": round(seconds, 3), "pairs_per_second": round(pairs / seconds, 1), "gpu_busy_percent": busy,
            "per_engine_seconds": [round(r["end"] - r["start"], 3) for r in sorted(rows, key=lambda r: r["part"])],
            "kv_cache_gib_each": args.kv_cache_gib, "engine": json.loads(args.engine_json)}


def threads_mode(args: argparse.Namespace) -> dict[str, Any]:
    shares = [token_prompts(args.model, args.pairs, i, args.engines) for i in range(args.engines)]
    warm = token_prompts(args.model, args.warmup)
    engine = {"kv_cache_memory_bytes": args.kv_cache_gib << 30, **json.loads(args.engine_json)}
    engines = [start_llm(args, engine) for _ in range(args.engines)]
    for llm in engines:
        classify(llm, warm)
    sampler = GpuBusySampler()
    sampler.start()
    started = time.perf_counter()
    threads = [threading.Thread(target=classify, args=(llm, ids)) for llm, ids in zip(engines, shares, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    busy = sampler.stop()
    pairs = sum(map(len, shares))
    for llm in engines:
        llm.llm_engine.engine_core.shutdown()
    return {"mode": "threads", "engines": args.engines, "pairs": pairs, "seconds": round(seconds, 3),
            "pairs_per_second": round(pairs / seconds, 1), "gpu_busy_percent": busy,
            "kv_cache_gib_each": args.kv_cache_gib, "engine": json.loads(args.engine_json)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="the bench's work directory (its bench-config.json)")
    parser.add_argument("--dataset", default=None,
                        help="one of the bench's datasets, e.g. 100x200 (default: the first)")
    parser.add_argument("--model", default=None, help="default: the bench's model")
    parser.add_argument("--mode", choices=["split", "procs", "threads"], default="split")
    parser.add_argument("--engines", type=int, default=2)
    parser.add_argument("--kv-cache-gib", type=int, default=8, help="KV cache per engine in procs/threads modes")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--engine-json", default="{}", help="extra vLLM engine arguments")
    parser.add_argument("--out", default=None, help="append the JSON line here too")
    args = parser.parse_args()
    config = json.loads((Path(args.work) / "bench-config.json").read_text())
    args.pairs = config["datasets"][args.dataset or next(iter(config["datasets"]))]
    args.warmup, args.model = config["warmup"], args.model or config["model"]
    setdefault_environment()
    result = {"split": split_mode, "procs": procs_mode, "threads": threads_mode}[args.mode](args)
    line = json.dumps(result)
    print("PROBE " + line, flush=True)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write(line + "\n")
    os._exit(0)


if __name__ == "__main__":
    main()
