"""python -m batchrank.bench.profile_step on the CPU: the tiny model's engine under vLLM's torch profiler (the CPU
build writes the same trace format, with operators where a GPU has kernels), the step split, vLLM's MFU counter and
the bench's floor. One engine start, about a minute on 2 cores: the GPU entry runs this tool, so a bug here must
show before a GPU call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from batchrank.bench import profile_engine, profile_step

TOOL = [sys.executable, "-m", "batchrank.bench.profile_step"]


def test_a_profiled_engine_step_split_beside_vllms_mfu(tiny_model: str, tmp_path: Path) -> None:
    # --shape and --device build the model as the throughput bench does (the same code, tested there).
    command = [*TOOL, "--model", tiny_model, "--work", str(tmp_path), "--datasets", "20:10",
               "--profile-pairs", "100", "--seed", "2", "--dtype", "float32", "--max-model-len", "512",
               "--engine-json", '{"max_num_seqs": 16}', "--peak-tflops", "1", "--timeout", "600", "--title", "dry",
               "--out-md", str(tmp_path / "p.md"), "--out-json", str(tmp_path / "p.json")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "p.json").read_text())
    clean, split, measures = report["result"]["clean"], report["split"], report["measures"]
    assert clean["pairs"] == 200 and clean["engine_steps"] >= 2 and clean["vllm_estimated_flops"] > 0
    assert report["result"]["profiled"]["pairs"] == 100 and report["dataset"]["seed"] == 2
    # max_num_seqs 16 (--engine-json) caps the requests of a step; the engine was batchrank's (a fixed CPU KV cache).
    assert report["result"]["engine_arguments"]["max_num_seqs"] == 16 and split["requests_per_step"] <= 16
    assert report["result"]["engine_arguments"]["kv_cache_memory_bytes"] == 1 << 30 and not report["plain"]
    assert split["full_steps"] >= 1 and split["steps"] >= split["full_steps"] + 1
    assert split["matmul_ms"] > 0 and split["attention_ms"] > 0 and split["period_ms"] > 0
    parts = split["matmul_ms"] + split["attention_ms"] + split["other_ms"]
    assert parts == pytest.approx(split["busy_ms"], rel=1e-6)
    assert split["busy_ms"] + split["idle_within_ms"] + split["idle_between_ms"] == pytest.approx(split["period_ms"])
    assert measures["vllm_mfu_percent"] > 0 and measures["bench_floor_percent"] > 0
    assert report["floor"]["peak_tflops"] == 1.0 and Path(report["trace"]).is_file()
    assert {w["class"] for w in report["top_work"]} >= {"matmul", "attention"}
    markdown = (tmp_path / "p.md").read_text()
    assert "## Engine step profile, " in markdown and ": dry: CPU (" in markdown
    assert "| step period, profiled | step period, clean run | matrix products | attention |" in markdown
    assert "python -m batchrank.bench.profile_step --model " in markdown and "% matmul: `" in markdown


def test_plain_profiles_vllms_default_engine(tmp_path: Path) -> None:
    args = profile_step.parse_arguments(["--model", "/m", "--plain", "--dtype", "float32", "--work", str(tmp_path)])
    config = {"plain": args.plain, "model": "/m", "dtype": args.dtype, "max_model_len": args.max_model_len,
              "engine": {}, "trace_dir": str(tmp_path / "trace")}
    arguments = profile_engine.engine_arguments(config)
    assert arguments["runner"] == "pooling" and "use_tqdm_on_load" not in arguments  # not batchrank's arguments
    assert arguments["profiler_config"]["torch_profiler_dir"] == str(tmp_path / "trace")
    assert arguments["enable_mfu_metrics"] and arguments["disable_log_stats"] is False


def test_bad_options_are_refused(tmp_path: Path) -> None:
    for extra, message in ((["--datasets", "20:10,10:5"], "--datasets: profile one dataset at a time"),
                           (["--profile-pairs", "0"], "--profile-pairs: at least 1"),
                           (["--engine-json", "{"], "argument --engine-json: not JSON")):
        done = subprocess.run([*TOOL, "--model", "/m", "--work", str(tmp_path), *extra], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 2 and message in done.stderr, (extra, done.stderr[-1000:])
