"""Engines per GPU, Ray actors and the memory share of engines that share a GPU (no engine starts here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from batchrank.errors import SpecError
from batchrank.execute.placement import (
    GIB,
    choose_executor,
    resolve_engines_per_gpu,
    resolve_worker_count,
    worker_options,
)
from batchrank.model_dir import ModelDirectory
from batchrank.scoring.engine_args import engine_arguments, shared_gpu_kv_cache_bytes
from batchrank.spec import JobSpec, parse_spec

# Qwen3-Reranker-0.6B's attention shape: 28 layers, 8 key/value heads of 128.
QWEN3_06B = {"num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
             "hidden_size": 1024, "max_position_embeddings": 40960}


def fake_model(root: Path, weight_bytes: int) -> str:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(QWEN3_06B))
    with (root / "model.safetensors").open("wb") as handle:
        handle.truncate(weight_bytes)  # sparse: the size is what counts
    return str(root)


def weights(spec: JobSpec) -> int:
    return ModelDirectory.open(spec.model.path).weight_bytes


def spec_for(model: str, **run: object) -> JobSpec:
    engine = run.pop("engine", {})
    return parse_spec({"input": {"path": "in.parquet"}, "model": {"path": model, "engine": engine},
                       "output": {"path": "out"}, "run": run}, "test")


def test_auto_shares_a_gpu_for_a_small_model_only(tmp_path: Path) -> None:
    small = spec_for(fake_model(tmp_path / "small", int(1.2 * GIB)))
    large = spec_for(fake_model(tmp_path / "large", 8 * GIB))
    assert resolve_engines_per_gpu(small, 1, weights(small)) == 2
    assert resolve_engines_per_gpu(large, 1, weights(large)) == 1
    assert resolve_engines_per_gpu(small, 0, weights(small)) == 1  # CPU actors never share


def test_auto_keeps_one_engine_when_memory_or_tensor_parallelism_is_set(tmp_path: Path) -> None:
    model = fake_model(tmp_path / "m", GIB)
    assert resolve_engines_per_gpu(spec_for(model, engine={"gpu_memory_utilization": 0.5}), 1, GIB) == 1
    assert resolve_engines_per_gpu(spec_for(model, engine={"tensor_parallel_size": 2}), 2, GIB) == 1


def test_explicit_sharing_with_tensor_parallelism_is_refused(tmp_path: Path) -> None:
    spec = spec_for(fake_model(tmp_path / "m", GIB), engines_per_gpu=2, engine={"tensor_parallel_size": 2})
    with pytest.raises(SpecError, match="engines_per_gpu > 1 needs model.engine.tensor_parallel_size 1"):
        resolve_engines_per_gpu(spec, 2, GIB)


def test_engines_per_gpu_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"run\.engines_per_gpu"):
        spec_for(fake_model(tmp_path / "m", GIB), engines_per_gpu=0)


def test_workers_and_gpu_fractions(tmp_path: Path) -> None:
    spec = spec_for(fake_model(tmp_path / "m", GIB), engines_per_gpu=3)
    assert resolve_worker_count(spec, cluster_gpus=2, engines_per_gpu=3) == 6
    assert worker_options(spec, cluster_gpus=2, engines_per_gpu=3) == {"num_gpus": 0.3333, "num_cpus": 1}
    assert worker_options(spec, cluster_gpus=0, engines_per_gpu=1) == {"num_gpus": 0, "num_cpus": 1}
    tensor_parallel = spec_for(str(tmp_path / "m"), engine={"tensor_parallel_size": 2})
    assert resolve_worker_count(tensor_parallel, cluster_gpus=8, engines_per_gpu=1) == 4
    assert worker_options(tensor_parallel, cluster_gpus=8, engines_per_gpu=1)["num_gpus"] == 2


def test_kv_share_is_the_gpu_share_less_weights_and_reserve(tmp_path: Path) -> None:
    model = ModelDirectory.open(fake_model(tmp_path / "m", 4 * GIB))
    assert model.kv_cache_bytes_per_token() == 2 * 28 * 8 * 128 * 2  # 112 KiB a token in bf16
    kv = shared_gpu_kv_cache_bytes(model, engines_per_gpu=2, gpu_total_bytes=80 * GIB, max_model_len=32768)
    # 0.9 * 80 / 2 = 36 GiB each, less 4 GiB of weights and a 3 + 1 GiB reserve
    assert kv == int(36 * GIB - 4 * GIB - 4 * GIB)


def test_a_share_too_small_for_one_sequence_is_refused_with_the_numbers(tmp_path: Path) -> None:
    model = ModelDirectory.open(fake_model(tmp_path / "m", 8 * GIB))
    with pytest.raises(SpecError, match=r"run.engines_per_gpu 4: .* 24 GiB .* 8.0 GiB of weights"):
        shared_gpu_kv_cache_bytes(model, engines_per_gpu=4, gpu_total_bytes=24 * GIB, max_model_len=32768)


def test_auto_executor_by_gpus_and_model_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    spec = spec_for(fake_model(tmp_path / "m", GIB))
    assert choose_executor(spec, 0, GIB) == "local"  # no GPU: one engine in process
    assert choose_executor(spec, 1, GIB) == "ray"  # one GPU, a small model: two engines share it
    assert choose_executor(spec, 1, 8 * GIB) == "local"  # one GPU, a large model: one engine
    assert choose_executor(spec, 2, 8 * GIB) == "ray"  # several GPUs: one engine each
    assert choose_executor(spec_for(str(tmp_path / "m"), executor="local"), 4, GIB) == "local"
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert choose_executor(spec, 0, GIB) == "ray"  # a cluster was named


def test_gpu_engines_schedule_asynchronously_unless_the_spec_says_otherwise(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # vLLM leaves async scheduling off for pooling models; on a GPU batchrank turns it on (+10% at 4B, measured in
    # docs/perf-notes.md entry 28), and a user's model.engine setting wins. The CPU build keeps vLLM's choice.
    gpu = SimpleNamespace(is_cpu=lambda: False, is_cuda=lambda: True, get_device_total_memory=lambda _: 80 * GIB)
    monkeypatch.setitem(sys.modules, "vllm.platforms", SimpleNamespace(current_platform=gpu))
    model_path = fake_model(tmp_path / "m", GIB)
    model = ModelDirectory.open(model_path)
    arguments = engine_arguments(spec_for(model_path), "qwen3-yes-no", model)
    assert arguments["async_scheduling"] is True and arguments["runner"] == "pooling"
    off = engine_arguments(spec_for(model_path, engine={"async_scheduling": False}), "qwen3-yes-no", model)
    assert off["async_scheduling"] is False
    shared = engine_arguments(spec_for(model_path), "qwen3-yes-no", model, engines_per_gpu=2)
    assert shared["async_scheduling"] is True and shared["kv_cache_memory_bytes"] > 0
    cpu = SimpleNamespace(is_cpu=lambda: True, is_cuda=lambda: False)
    monkeypatch.setitem(sys.modules, "vllm.platforms", SimpleNamespace(current_platform=cpu))
    assert "async_scheduling" not in engine_arguments(spec_for(model_path), "qwen3-yes-no", model)
