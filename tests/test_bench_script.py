"""Smoke tests of scripts/bench.py on the CPU: the tiny random-weight model, every system, two datasets.

The first starts four engines on the CPU (batchrank's, its FP8 stand-in's, plain vLLM's, each in its own process,
and transformers): about three minutes on 2 cores. The CPU build has no FP8 kernels, so the fp8 system runs with
the same settings as batchrank: its drift must come out as none, which checks the drift report end to end.
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
        sys.executable, str(SCRIPT), "--shape", "tiny", "--datasets", "8:4,16:2", "--systems", "batchrank,vllm,hf,fp8",
        "--fp8-datasets", "16:2", "--fp8-engine-json", "{}", "--fp8-dtype", "float32", "--dtype", "float32",
        "--max-model-len", "512", "--work", str(tmp_path), "--out-md", str(tmp_path / "b.md"),
        "--out-json", str(tmp_path / "b.json"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    report = json.loads((tmp_path / "b.json").read_text())
    assert set(report["systems"]) == {"batchrank", "vllm", "hf", "fp8"}
    assert set(report["runs"]) == {"8x4", "16x2"}
    for system, process in report["systems"].items():
        assert not process["failed"], (system, process.get("stderr_tail"))
        # The process tree's resident set, sampled while it ran: at least the torch and model it loaded.
        assert process["peak_host_memory_mib"] > 200, system
    for name, run in report["runs"].items():
        expected = {"batchrank", "vllm", "hf"} | ({"fp8"} if name == "16x2" else set())
        assert set(run["systems"]) == expected, name
        for system, result in run["systems"].items():
            assert result["pairs"] == 32, (name, system)
            assert result["pairs_per_second"] > 0 and result["prompt_tokens"] > 32, (name, system)
            assert result["engine_start_seconds"] > 0, (name, system)
        # Same prompts, same token ids, float32: batchrank and one plain llm.classify call agree to rounding.
        agreement = run["comparisons"]["batchrank vs vllm"]
        assert agreement["pairs_compared"] == 32 and agreement["max_abs_diff"] < 1e-4
        assert run["systems"]["batchrank"]["prompt_tokens"] == run["systems"]["vllm"]["prompt_tokens"]
        # The computed floor counts prompt tokens less plain vLLM's prefix-cache hits on the same token ids.
        vllm = run["systems"]["vllm"]
        computed = (vllm["prompt_tokens"] - vllm["prefix_cache_hit_tokens"]) / vllm["pairs"]
        assert run["computed_tokens_per_pair"] == pytest.approx(computed)
        assert 0 < computed < report["datasets"][name]["mean_prompt_tokens"], "the cache serves most prefixes"
        assert run["systems"]["batchrank"]["prefix_cache_hits_per_pair"] > 0, "batchrank's hits come from run.json"
    # One engine start a system, whatever the number of datasets.
    for system in ("batchrank", "vllm"):
        starts = {r["engine_start_seconds"] for r in report["systems"][system]["datasets"].values()}
        assert len(starts) == 1, system
    # The fp8 stand-in scores with batchrank's settings: no drift in the scores, the top 10 or the order.
    drift = report["runs"]["16x2"]["comparisons"]["fp8 vs batchrank"]
    assert drift["pairs_compared"] == 32 and drift["queries"] == 2 and drift["max_abs_diff"] < 1e-4
    assert drift["top_k_changed_share"] == 0 and drift["mean_kendall_tau"] == pytest.approx(1.0)
    assert report["floor"]["non_embedding_parameters"] > 0
    assert report["gpu"] == "CPU" or report["gpu"].startswith("GPU")

    markdown = (tmp_path / "b.md").read_text()
    header = ("| candidates x queries | system | pairs | pairs/s | vs plain vLLM | prompt tokens/s | % of floor | "
              "% of computed floor | prefix hits a pair | peak GPU memory | peak host memory | engine start |")
    assert header in markdown
    assert f"8x4: {report['runs']['8x4']['computed_tokens_per_pair']:.1f} computed a pair" in markdown
    assert "16x2, scores fp8 vs batchrank: max |diff|" in markdown and "top-10 set changed for 0.0%" in markdown
    assert "bench.py --shape tiny" in markdown and "2 x N x tokens" in markdown
    assert done.stdout.count("| plain vLLM (one llm.classify, defaults) | 32 |") == 2


def test_a_failing_system_is_reported_and_the_others_still_run(tiny_model: str, tmp_path: Path) -> None:
    base = [sys.executable, str(SCRIPT), "--model", tiny_model, "--datasets", "8:4", "--dtype", "float32",
            "--max-model-len", "512", "--work", str(tmp_path), "--out-md", str(tmp_path / "b.md")]
    # batchrank refuses an engine key before starting anything: its process fails, plain transformers still runs.
    done = subprocess.run([*base, "--systems", "fp8,hf", "--fp8-engine-json", '{"no_such_engine_key": 1}',
                           "--out-json", str(tmp_path / "b.json")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "b.json").read_text())
    assert report["systems"]["fp8"]["failed"] and "no_such_engine_key" in report["systems"]["fp8"]["stderr_tail"]
    assert not report["systems"]["hf"]["failed"] and report["runs"]["8x4"]["systems"]["hf"]["pairs"] == 32
    assert "| 8x4 | batchrank FP8 | FAILED: exit code 1 |" in (tmp_path / "b.md").read_text()
    # Past the deadline, a system is not started at all, and the report still comes out.
    done = subprocess.run([*base, "--systems", "hf", "--deadline", "1", "--out-json", str(tmp_path / "late.json")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    late = json.loads((tmp_path / "late.json").read_text())
    reason = late["systems"]["hf"]["reason"]
    assert reason.startswith("not run: ") and "of --deadline 1" in reason
