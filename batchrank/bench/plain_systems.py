"""The plain anchors of the throughput bench, in their own process: what a user would write instead of batchrank.

  vllm  plain vLLM: the model card's prompt text for every pair in input order, vLLM's default engine arguments;
        each dataset is scored as one llm.classify call and again in calls of each of the config's `vllm_calls`
        sizes (the prefix cache emptied before each, so that no pass finds the previous one's prefixes)
  hf    plain transformers: AutoModelForCausalLM with SDPA, left-padded batches sorted by length, softmax over the
        "no"/"yes" logits at the last position
"""

from __future__ import annotations

import time
from typing import Any

from batchrank.bench.system_common import Emit, device_is_cpu, each_dataset, pair_texts, write_scores


def call_sizes(config: dict[str, Any], pairs: int) -> list[int]:
    """The call sizes plain vLLM scores a dataset of `pairs` in, besides one call: those below the dataset's size
    (a call of the whole dataset or more is the one call)."""
    return sorted({size for size in config.get("vllm_calls", []) if 0 < size < pairs})


def _classify_in_calls(llm: Any, texts: list[str], size: int) -> tuple[list[Any], float]:
    """llm.classify over `texts` in calls of `size` prompts (0: one call), timed, after emptying the prefix cache."""
    if not llm.reset_prefix_cache():
        raise RuntimeError("vLLM refused to empty its prefix cache (requests still running)")
    step = size or len(texts)
    started = time.perf_counter()
    outputs = []
    for first in range(0, len(texts), step):
        outputs += llm.classify(texts[first : first + step], use_tqdm=False)
    return outputs, time.perf_counter() - started


def _measured(outputs: list[Any], seconds: float) -> dict[str, Any]:
    return {"pairs": len(outputs), "prompt_tokens": sum(len(o.prompt_token_ids) for o in outputs),
            "seconds": seconds,
            "prefix_cache_hit_tokens": sum(getattr(o, "num_cached_tokens", 0) or 0 for o in outputs)}


def run_vllm(config: dict[str, Any], system: str, emit: Emit) -> None:
    """One engine with vLLM's defaults; each dataset as one call, then in calls of each size."""
    import numpy as np
    from vllm import LLM

    from batchrank.scoring.engine_args import CPU_KV_CACHE_BYTES, QWEN3_YES_NO_OVERRIDES

    arguments: dict[str, Any] = {"model": config["model"], "runner": "pooling", "dtype": config["dtype"],
                                 "max_model_len": config["max_model_len"], "hf_overrides": QWEN3_YES_NO_OVERRIDES}
    if device_is_cpu():
        arguments["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES  # vLLM's CPU build would take most of the RAM
    started = time.perf_counter()
    llm = LLM(**arguments)
    result: dict[str, Any] = {"engine_start_seconds": time.perf_counter() - started, "engine_arguments": arguments,
                              "clock": "llm.classify(texts) per dataset, prompt texts in input order (vLLM "
                              "tokenizes); then the same texts in calls of each size",
                              "warmup": f"llm.classify on {config['warmup_pairs']} other pairs"}
    llm.classify(pair_texts(config["warmup"])[1], use_tqdm=False)

    def score_one(name: str, path: str) -> dict[str, Any]:
        pairs, texts = pair_texts(path)
        outputs, seconds = _classify_in_calls(llm, texts, 0)
        scores = np.array([float(o.outputs.probs[-1]) for o in outputs])  # the yes/no head: P(yes)
        entry = {**_measured(outputs, seconds), "engine_start_seconds": result["engine_start_seconds"],
                 "scores_path": write_scores(config, system, name, pairs, scores), "calls": {}}
        result["datasets"][name] = entry
        for size in call_sizes(config, len(texts)):
            emit(result)  # what is measured so far survives a timeout in the next pass
            outputs, seconds = _classify_in_calls(llm, texts, size)
            again = np.array([float(o.outputs.probs[-1]) for o in outputs])
            entry["calls"][str(size)] = {**_measured(outputs, seconds), "call_size": size,
                                         "llm_calls": -(-len(texts) // size),
                                         "max_abs_diff_vs_one_call": float(np.abs(again - scores).max())}
        return entry

    each_dataset(config, system, emit, result, score_one)
    llm.llm_engine.engine_core.shutdown()


def run_hf(config: dict[str, Any], system: str, emit: Emit) -> None:
    """Plain transformers with SDPA: tokenize, sort by length, padded batches of config['hf_batch'], P(yes)."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cpu" if device_is_cpu() else "cuda"
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
        pairs, texts = pair_texts(path, config["hf_max_pairs"])
        started = time.perf_counter()
        scores, tokens = score(texts)
        return {"pairs": len(texts), "prompt_tokens": tokens, "seconds": time.perf_counter() - started,
                "engine_start_seconds": result["engine_start_seconds"],
                "scores_path": write_scores(config, system, name, pairs, scores)}

    score(pair_texts(config["warmup"])[1])
    each_dataset(config, system, emit, result, score_one)
