"""Smoke test of scripts/bench.py on the CPU: the tiny random-weight model, all three systems, 32 pairs.

It starts two vLLM engines on the CPU (batchrank's and the plain vLLM anchor's, each in its own process): about
two minutes on 2 cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"


def test_bench_tiny_on_cpu(tmp_path: Path) -> None:
    command = [
        sys.executable, str(SCRIPT), "--shape", "tiny", "--queries", "4", "--docs-per-query", "8",
        "--systems", "batchrank,vllm,hf", "--dtype", "float32", "--max-model-len", "512",
        "--work", str(tmp_path), "--out-md", str(tmp_path / "b.md"), "--out-json", str(tmp_path / "b.json"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    report = json.loads((tmp_path / "b.json").read_text())
    assert set(report["systems"]) == {"batchrank", "vllm", "hf"}
    for system, result in report["systems"].items():
        assert not result["failed"], (system, result.get("stderr_tail"))
        assert result["pairs"] == 32, system
        assert result["pairs_per_second"] > 0, system
        assert result["prompt_tokens"] > 32, system
        assert result["engine_start_seconds"] > 0, system
        # The process tree's resident set, sampled while it ran: at least the torch and model it loaded.
        assert result["peak_host_memory_mib"] > 200, system
    # Same prompts, same token ids, float32: batchrank and one plain llm.classify call agree to rounding.
    agreement = report["agreement"]["batchrank vs plain vLLM"]
    assert agreement["pairs_compared"] == 32
    assert agreement["max_abs_diff"] < 1e-4
    assert report["systems"]["batchrank"]["prompt_tokens"] == report["systems"]["vllm"]["prompt_tokens"]
    assert report["floor"]["non_embedding_parameters"] > 0
    assert report["gpu"] == "CPU" or report["gpu"].startswith("GPU")

    markdown = (tmp_path / "b.md").read_text()
    header = "| system | pairs | pairs/s | prompt tokens/s | % of floor | % of computed floor | peak GPU memory "
    assert header + "| peak host memory |" in markdown
    # The computed floor counts prompt tokens less plain vLLM's prefix-cache hits on the same token ids.
    vllm = report["systems"]["vllm"]
    computed = (vllm["prompt_tokens"] - vllm["prefix_cache_hit_tokens"]) / vllm["pairs"]
    assert report["floor"]["computed_tokens_per_pair"] == pytest.approx(computed)
    assert 0 < computed < report["data"]["mean_prompt_tokens"], "4 queries of 8: the cache serves most prefixes"
    assert f"{computed:.1f} a pair" in markdown
    assert "bench.py --shape tiny" in markdown
    assert "2 x N x prompt tokens" in markdown
    assert done.stdout.count("| plain vLLM (one llm.classify, defaults) | 32 |") == 1
