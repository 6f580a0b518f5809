"""The models a measurement scores: random-weight Qwen3 rerankers of real shapes, built once, and the compute floor
their parameter count sets."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from batchrank.bench.environment import REPO, child_environment


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


def compute_floor(model_dir: str | Path, peak_tflops: float) -> dict[str, Any]:
    """2 x N FLOP a prompt token at `peak_tflops`: the tokens per second no system can beat on this device."""
    parameters, formula = non_embedding_parameters(model_dir)
    return {"non_embedding_parameters": parameters, "formula": formula, "peak_tflops": peak_tflops,
            "gflop_per_token": 2 * parameters / 1e9, "tokens_per_second": peak_tflops * 1e12 / (2 * parameters)}
