"""python -m batchrank.bench.engine_probe on the CPU: its three modes on the tiny model, one engine each (three
engine starts, about two minutes on 2 cores), on the pairs a throughput --prepare-only left in its work directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = [sys.executable, "-m", "batchrank.bench.engine_probe"]


@pytest.fixture(scope="module")
def prepared(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("probe")
    done = subprocess.run([sys.executable, "-m", "batchrank.bench.throughput", "--model", tiny_model, "--datasets",
                           "10:4,10:6", "--dtype", "float32", "--max-model-len", "512", "--work", str(work),
                           "--prepare-only"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return work


@pytest.mark.parametrize("mode", ["split", "procs", "threads"])
def test_each_mode_scores_the_pairs_and_reports_its_clock(prepared: Path, tiny_model: str, mode: str) -> None:
    out = prepared / f"{mode}.jsonl"
    command = [*TOOL, "--work", str(prepared), "--dataset", "10x6", "--model", tiny_model, "--mode", mode,
               "--engines", "1", "--kv-cache-gib", "1", "--dtype", "float32", "--max-model-len", "512",
               "--engine-json", '{"max_num_seqs": 32}', "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    result = json.loads(line.removeprefix("PROBE "))
    assert result == json.loads(out.read_text())  # --out appends the same line
    assert result["mode"] == mode and result["pairs"] == 60 and result["pairs_per_second"] > 0  # --dataset 10x6
    assert result["engine"] == {"max_num_seqs": 32} and result["gpu_busy_percent"] is None  # no nvidia-smi
    if mode == "split":
        assert result["engine_steps"] > 0 and result["seconds_waiting_for_engine_core"] > 0
        assert result["seconds_adding_requests"] > 0 and result["prompt_tokens"] > 60
    else:
        assert result["engines"] == 1 and result["kv_cache_gib_each"] == 1


def test_a_work_directory_without_a_bench_config_is_refused(tmp_path: Path) -> None:
    done = subprocess.run([*TOOL, "--work", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and f"--work {tmp_path}: no bench-config.json" in done.stderr
