"""python -m batchrank.bench.compare_runs on the CPU: two Ray actors, and a rerun with one actor SIGKILLed.

Two `batchrank run` processes on the tiny model (about two minutes on 2 cores): the multi-GPU benchmark of issue 5
runs this script, so its kill and its checks must work before a GPU machine's time is spent on it. (That the Ray
executor's output equals the local executor's is tests/test_ray_executor.py's.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO, make_pairs, write_parquet


def test_two_actors_and_a_rerun_with_one_killed(tiny_model: str, tmp_path: Path) -> None:
    names = {"qid": "query_id", "query_text": "query", "pid": "doc_id", "passage": "document"}
    rows = [{names.get(k, k): v for k, v in row.items()} for row in make_pairs(16, 8, seed=5)]
    pairs = write_parquet(rows, tmp_path / "pairs.parquet")  # compare_runs writes a job without column mappings
    command = [
        sys.executable, "-m", "batchrank.bench.compare_runs", "--pairs", str(pairs), "--model", tiny_model,
        "--work", str(tmp_path / "work"), "--dtype", "float32", "--max-model-len", "512", "--chunk-size", "8",
        "--config", "two=run.executor=ray,run.num_workers=2,run.chunks_in_flight_per_worker=1",
        "--kill-in", "two:3", "--check", "two-killed:two", "--run-timeout", "600", "--title", "kill-smoke",
        "--out-md", str(tmp_path / "compare.md"), "--out-json", str(tmp_path / "compare.json"),
    ]
    # Each run's Ray cluster goes with its process group (batchrank.bench.processes.run_measured): no `ray stop`, which would also stop
    # every other Ray cluster on this machine.
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = {r["name"]: r for r in json.loads((tmp_path / "compare.json").read_text())}
    assert set(results) == {"two", "two-killed"}
    assert all(r["pairs"] == 128 for r in results.values())
    # Checked against the first configuration's output: every pair once, the same scores.
    assert results["two-killed"]["same_pairs_once"] and results["two-killed"]["max_score_difference"] < 1e-5
    assert results["two-killed"]["reference"] == "two"
    # Both engines' counts: the prefix cache served the queries' shared prefixes; each engine ran empty at its end.
    assert results["two"]["workers"] == 2 and 0 < results["two"]["prefix_cache_hit_share"] < 1
    assert results["two"]["engine_drains"] >= 2
    killed = results["two-killed"]
    assert isinstance(killed["killed"], dict) and killed["killed"]["after_parts"] == 3
    # The killed worker is lost, and whatever it held went back to the queue (workers join as their engines come
    # up: a worker killed while still starting held nothing).
    assert [lost["worker"].split(" ")[0] for lost in killed["lost_workers"]] in (["worker-0"], ["worker-1"])
    assert sorted(killed["lost_workers"][0]["chunks"]) == sorted(killed["chunks_retried"])
    assert killed["baseline"] == "two" and "failure_cost_seconds" in killed
    assert "two-killed: one worker SIGKILLed" in done.stdout
    markdown = (tmp_path / "compare.md").read_text()
    assert "## kill-smoke: " in markdown and "python -m batchrank.bench.compare_runs --pairs" in markdown
    assert "| two-killed | run.executor=ray " in markdown


def test_malformed_options_are_refused_before_any_run(tmp_path: Path) -> None:
    base = [sys.executable, "-m", "batchrank.bench.compare_runs", "--pairs", "p.parquet", "--model", "/nonexistent",
            "--work", str(tmp_path / "work"), "--config", "a=run.executor=local"]
    for extra, message in ((["--config", "b"], "--config 'b': expected NAME=KEY=VALUE"),
                           (["--kill-in", "c:3"], "--kill-in 'c:3': expected NAME:PARTS with NAME one of ['a']"),
                           (["--check", "a:a-killed"], "--check 'a:a-killed': expected B:A with both run names (a)")):
        done = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=120, cwd=REPO)
        assert done.returncode == 2 and message in done.stderr, (extra, done.stderr[-1000:])
        assert not (tmp_path / "work").exists()
