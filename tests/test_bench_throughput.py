"""python -m batchrank.bench.throughput on the CPU: the tiny random-weight model, every system, two datasets, every
documented option.

The module's one full run starts four engines on the CPU (batchrank's, its FP8 stand-in's, plain vLLM's, each in its
own process, and transformers): about three minutes on 2 cores. The CPU build has no FP8 kernels, so the fp8 system
runs with the same settings as batchrank: its drift must come out as none, which checks the drift report end to end.
The other tests reuse its report as a plain vLLM reference, or stop before any engine starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

TOOL = [sys.executable, "-m", "batchrank.bench.throughput"]
COMMON = ["--doc-words", "20:60", "--seed", "3", "--dtype", "float32", "--max-model-len", "512"]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    """Every system on two datasets of 32 pairs, with every option that changes what a system does."""
    work = tmp_path_factory.mktemp("bench")
    command = [
        *TOOL, "--shape", "tiny", "--device", "cpu", "--datasets", "8:4,16:2", *COMMON,
        "--systems", "batchrank,vllm,hf,fp8", "--vllm-calls", "8,40", "--fp8-datasets", "16:2",
        "--fp8-engine-json", "{}", "--fp8-dtype", "float32", "--engine-json", '{"max_num_seqs": 64}',
        "--run-json", '{"executor": "local"}', "--chunk-size", "16", "--hf-batch", "4", "--hf-max-pairs", "24",
        "--peak-tflops", "2.5", "--system-timeout", "600", "--title", "tiny-cpu", "--work", str(work),
        "--out-md", str(work / "b.md"), "--out-json", str(work / "b.json"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return work, json.loads((work / "b.json").read_text()), done.stdout


def test_every_system_scores_every_dataset_and_agrees_with_plain_vllm(full_run) -> None:
    work, report, stdout = full_run
    assert set(report["systems"]) == {"batchrank", "vllm", "hf", "fp8"}
    assert set(report["runs"]) == {"8x4", "16x2"}
    for system, process in report["systems"].items():
        assert not process["failed"], (system, process.get("stderr_tail"))
        # The process tree's resident set, sampled while it ran: at least the torch and model it loaded.
        assert process["peak_host_memory_mib"] > 200, system
    for name, run in report["runs"].items():
        expected = {"batchrank", "vllm", "vllm@8", "hf"} | ({"fp8"} if name == "16x2" else set())
        assert set(run["systems"]) == expected, name  # calls of 40 >= the dataset's 32 pairs: the one call
        for system, result in run["systems"].items():
            assert result["pairs"] == (24 if system == "hf" else 32), (name, system)  # --hf-max-pairs 24
            assert result["pairs_per_second"] > 0 and result["prompt_tokens"] > 32, (name, system)
            assert result["engine_start_seconds"] > 0, (name, system)
        # Same prompts, same token ids, float32: batchrank and one plain llm.classify call agree to rounding.
        agreement = run["comparisons"]["batchrank vs vllm"]
        assert agreement["pairs_compared"] == 32 and agreement["max_abs_diff"] < 1e-4
        assert run["comparisons"]["hf vs vllm"]["pairs_compared"] == 24
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


def test_plain_vllm_at_its_best_call_size_is_the_anchor_with_its_one_call_beside_it(full_run) -> None:
    work, report, stdout = full_run
    for run in report["runs"].values():
        one, calls = run["systems"]["vllm"], run["systems"]["vllm@8"]
        assert calls["call_size"] == 8 and calls["llm_calls"] == 4 and calls["pairs"] == 32
        # The same pairs in calls of 8: the same scores (the prefix cache was emptied, so the same hits too).
        assert calls["max_abs_diff_vs_one_call"] < 1e-4
        assert calls["prefix_cache_hit_tokens"] <= one["prefix_cache_hit_tokens"] + 1e-9
        best = max(one["pairs_per_second"], calls["pairs_per_second"])
        assert run["plain_vllm_best_rate"] == pytest.approx(best)
        assert run["plain_vllm_best"] == ("vllm" if one["pairs_per_second"] == best else "vllm@8")
        batchrank = run["systems"]["batchrank"]
        assert batchrank["ratio_vs_vllm"] == pytest.approx(batchrank["pairs_per_second"] / best)
        assert batchrank["ratio_vs_vllm_one_call"] == pytest.approx(batchrank["pairs_per_second"]
                                                                    / one["pairs_per_second"])
    markdown = (work / "b.md").read_text()
    header = ("| candidates x queries | system | pairs | pairs/s | vs plain vLLM's best | vs its one call | prompt "
              "tokens/s | % of floor | % of computed floor | prefix hits a pair | peak GPU memory | peak host memory "
              "| engine start |")
    assert header in markdown
    assert markdown.count("| plain vLLM (llm.classify calls of 8) | 32 |") == 2
    assert stdout.count("| plain vLLM (one llm.classify) | 32 |") == 2
    assert "8x4, plain vLLM at its best: plain vLLM (" in markdown and "its one call: " in markdown
    assert "then calls of 8, 40 prompts (prefix cache emptied before each pass)" in markdown


def test_the_options_reach_what_each_system_runs(full_run) -> None:
    work, report, stdout = full_run
    data = report["datasets"]["8x4"]
    assert data["seed"] == 3 and data["doc_words"] == [20, 60]  # --seed, --doc-words
    scores = pl.read_parquet(report["runs"]["8x4"]["systems"]["vllm"]["scores_path"])
    assert scores.height == 32 and scores["query_id"].str.starts_with("s3q").all()
    batchrank = report["systems"]["batchrank"]["datasets"]["8x4"]
    assert batchrank["executor"] == "local" and batchrank["chunk_size"] == 16 and batchrank["chunks"] == 2
    assert batchrank["engine_arguments"]["max_num_seqs"] == 64  # --engine-json: batchrank's model.engine
    assert report["systems"]["hf"]["batch"] == 4  # --hf-batch
    assert report["floor"]["peak_tflops"] == 2.5  # --peak-tflops
    assert report["floor"]["tokens_per_second"] == pytest.approx(2.5e12 / (2 * report["floor"]["non_embedding_"
                                                                                               "parameters"]))
    assert report["settings"]["vllm_calls"] == [8, 40] and report["title"] == "tiny-cpu"
    markdown = (work / "b.md").read_text()
    assert "## random-weight Qwen3-Reranker tiny shape: tiny-cpu: " in markdown
    assert "python -m batchrank.bench.throughput --shape tiny --device cpu" in markdown
    assert "16x2, scores fp8 vs batchrank: max |diff|" in markdown and "top-10 set changed for 0.0%" in markdown
    assert f"8x4: {report['runs']['8x4']['computed_tokens_per_pair']:.1f} computed a pair" in markdown
    assert "2 x N x tokens / 2.5 TFLOP/s" in markdown
    assert "running (timeout 600 s" in stdout  # --system-timeout
    assert (work / "model-tiny" / "config.json").is_file()  # --shape tiny --device cpu built it in --work


def test_a_failing_system_is_reported_and_the_others_are_anchored_by_a_reference(full_run, tmp_path: Path) -> None:
    reference = full_run[0] / "b.json"
    base = [*TOOL, "--model", str(full_run[0] / "model-tiny"), "--datasets", "8:4", *COMMON, "--work", str(tmp_path),
            "--out-md", str(tmp_path / "b.md")]
    # batchrank refuses an engine key before starting anything: its process fails, plain transformers still runs,
    # and its ratio is against the reference's plain vLLM on the same pairs (same seed, words, shape, dtype); its
    # scores are compared with the reference's, which scored the same model directory.
    done = subprocess.run([*base, "--systems", "fp8,hf", "--fp8-engine-json", '{"no_such_engine_key": 1}',
                           "--vllm-reference", str(reference), "--out-json", str(tmp_path / "b.json")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "b.json").read_text())
    assert report["systems"]["fp8"]["failed"] and "no_such_engine_key" in report["systems"]["fp8"]["stderr_tail"]
    run = report["runs"]["8x4"]
    assert not report["systems"]["hf"]["failed"] and run["systems"]["hf"]["pairs"] == 32
    anchored = json.loads(reference.read_text())["runs"]["8x4"]
    assert run["plain_vllm_best_rate"] == pytest.approx(anchored["plain_vllm_best_rate"])
    assert run["systems"]["hf"]["ratio_vs_vllm"] == pytest.approx(run["systems"]["hf"]["pairs_per_second"]
                                                                  / anchored["plain_vllm_best_rate"])
    assert {"reference:vllm", "reference:vllm@8"} <= set(run["systems"])
    assert run["comparisons"]["hf vs vllm"]["pairs_compared"] == 32
    markdown = (tmp_path / "b.md").read_text()
    assert "| 8x4 | batchrank FP8 | FAILED: exit code 1 |" in markdown
    assert "| 8x4 | plain vLLM (one llm.classify) from tiny-cpu (32 pairs, " in markdown
    # Past the deadline, a system is not started at all, and the report still comes out.
    done = subprocess.run([*base, "--systems", "hf", "--deadline", "1", "--out-json", str(tmp_path / "late.json")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    late = json.loads((tmp_path / "late.json").read_text())
    reason = late["systems"]["hf"]["reason"]
    assert reason.startswith("not run: ") and "of --deadline 1" in reason


def test_a_reference_made_another_way_is_refused_before_anything_runs(full_run, tiny_model: str,
                                                                      tmp_path: Path) -> None:
    reference = full_run[0] / "b.json"
    command = [*TOOL, "--model", tiny_model, "--datasets", "8:4", "--doc-words", "20:60", "--seed", "4",
               "--dtype", "float32", "--max-model-len", "512", "--systems", "hf", "--vllm-reference", str(reference),
               "--work", str(tmp_path), "--out-md", str(tmp_path / "b.md")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and not (tmp_path / "logs").exists(), done.stdout[-2000:] + done.stderr[-2000:]
    assert f"--vllm-reference {reference}: no dataset of it was made like this run's" in done.stderr
    assert "dataset 8x4's seed is 3, this run's 4" in done.stderr


def test_prepare_only_and_bad_options(tiny_model: str, tmp_path: Path) -> None:
    base = [*TOOL, "--model", tiny_model, "--datasets", "8:2", *COMMON, "--work", str(tmp_path)]
    done = subprocess.run([*base, "--prepare-only"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    config = json.loads((tmp_path / "bench-config.json").read_text())
    assert set(config["datasets"]) == {"8x2"} and Path(config["datasets"]["8x2"]).is_file()
    assert config["vllm_calls"] == [5000, 20000, 100000]  # the default: plain vLLM's call sizes
    assert "--prepare-only: no system run" in done.stdout and not (tmp_path / "logs").exists()
    for extra, message in ((["--vllm-reference", str(tmp_path / "none.json")], "none.json: cannot read it as JSON"),
                           (["--vllm-reference", str(tmp_path / "bench-config.json")], "not a finished throughput"),
                           (["--systems", "vllm,nope"], "--systems: unknown ['nope']"),
                           (["--vllm-calls", "5k"], "argument --vllm-calls: '5k': expected prompts per call"),
                           (["--run-json", "[]"], "argument --run-json: expected a JSON object")):
        done = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and message in done.stderr, (extra, done.stderr[-1000:])
