"""What a user relies on around the scores, on the GPU build: a SIGKILLed run leaves no engine holding the GPU and
resumes to the uninterrupted output (with model.batch_invariant: whether bit for bit is recorded, not assumed); two
engines sharing the GPU through the Ray executor give the local executor's output; rejected rows, `status` and the
exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import psutil

from batchrank.bench.memory import gpu_memory_used_mib, wait_for_gpu_memory
from conftest import make_pairs, run_cli, scored_parts, wait_for_parts, write_job, write_parquet
from gpu.conftest import ON_CPU

BATCHRANK = [sys.executable, "-m", "batchrank.cli"]  # the GPU machine has no installed `batchrank` command


def scores(out: Path) -> pl.DataFrame:
    return pl.read_parquet(str(out / "scores" / "*.parquet")).sort("query_id", "doc_id")


def test_sigkill_frees_the_gpu_and_the_rerun_resumes_to_the_same_output(gpu_models: dict[str, str], tmp_path: Path,
                                                                        record_property) -> None:
    source = write_parquet(make_pairs(60, 50, seed=11), tmp_path / "pairs.parquet")  # 3,000 pairs, 30 chunks
    model = gpu_models["qwen3-yes-no"]
    settings = {"run": {"chunk_size": 100, "executor": "local"}}
    if not ON_CPU:
        settings["model"] = {"batch_invariant": True}
    job = write_job(tmp_path / "job.yaml", source, model, tmp_path / "killed", **settings)
    baseline = gpu_memory_used_mib()  # None without nvidia-smi (the CPU dry run)
    assert ON_CPU or baseline is not None, "nvidia-smi must give the GPU's memory"
    with open(tmp_path / "killed.log", "w") as log:
        process = subprocess.Popen([*BATCHRANK, "run", str(job)], stdout=log, stderr=subprocess.STDOUT)
    wait_for_parts(process, tmp_path / "killed", 3, timeout=400)
    engine_processes = psutil.Process(process.pid).children(recursive=True)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert 3 <= len(scored_parts(tmp_path / "killed")) < 30, "the kill must land mid-job"
    _, alive = psutil.wait_procs(engine_processes, timeout=30)
    assert not alive, f"left behind by the killed run: {[p.cmdline() for p in alive]}"
    if baseline is not None:
        wait_for_gpu_memory(baseline, limit=30)
        used = gpu_memory_used_mib()
        assert used is not None and used <= baseline + 1024, "the killed run's engine still holds GPU memory"

    resumed = subprocess.run([*BATCHRANK, "run", str(job)], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stderr
    reference = write_job(tmp_path / "ref.yaml", source, model, tmp_path / "reference", **settings)
    assert subprocess.run([*BATCHRANK, "run", str(reference)], capture_output=True, timeout=600).returncode == 0
    got, expected = scores(tmp_path / "killed"), scores(tmp_path / "reference")
    assert got.height == 3000 and got.drop("score").equals(expected.drop("score"))
    difference = float((got["score"] - expected["score"]).abs().max())
    record_property("batch_invariant_max_difference", difference)
    print(f"resumed against uninterrupted, batch_invariant={not ON_CPU}: max |difference| {difference:.3g}")
    assert difference < 1e-6


def test_two_engines_on_the_gpu_through_ray_equal_the_local_executor(gpu_models: dict[str, str], tmp_path: Path) -> None:
    rows = make_pairs(40, 25, seed=5)
    source = write_parquet(rows, tmp_path / "pairs.parquet")
    ray = {"executor": "ray", "num_workers": 2, "chunk_size": 100}
    if not ON_CPU:
        ray["engines_per_gpu"] = 2
    local = write_job(tmp_path / "local.yaml", source, gpu_models["qwen3-yes-no"], tmp_path / "local",
                      run={"executor": "local", "chunk_size": 100})
    shared = write_job(tmp_path / "ray.yaml", source, gpu_models["qwen3-yes-no"], tmp_path / "ray", run=ray)
    assert run_cli("run", str(local), "--preview", "0").exit_code == 0
    done = subprocess.run([*BATCHRANK, "run", str(shared), "--preview", "0"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    execution = json.loads((tmp_path / "ray" / "run.json").read_text())["execution"]
    assert execution["executor"] == "ray" and execution["workers"] == 2
    got, expected = scores(tmp_path / "ray"), scores(tmp_path / "local")
    assert got.drop("score").equals(expected.drop("score"))
    assert np.abs((got["score"] - expected["score"]).to_numpy()).max() < 1e-5


def test_jobs_from_python_with_the_default_executor(gpu_models: dict[str, str], tmp_path: Path) -> None:
    """batchrank.run_job twice in one Python process (a notebook, a pipeline step) with run.executor auto, which on
    a GPU starts Ray in this process for two engines: both jobs finish, equal the local executor's scores, and leave
    no Ray and no engine behind."""
    from batchrank import load_spec, run_job

    source = write_parquet(make_pairs(20, 10, seed=8), tmp_path / "pairs.parquet")
    executor = {"executor": "ray", "num_workers": 2} if ON_CPU else {}  # the CPU's auto is local: name Ray there
    local = write_job(tmp_path / "local.yaml", source, gpu_models["qwen3-yes-no"], tmp_path / "local",
                      run={"executor": "local", "chunk_size": 40})
    subprocess.run([*BATCHRANK, "run", str(local), "--preview", "0"], check=True, capture_output=True, timeout=600)
    import ray

    before = {p.pid for p in psutil.Process().children(recursive=True)}  # the session's shared engine, if any
    for name in ("first", "second"):
        job = write_job(tmp_path / f"{name}.yaml", source, gpu_models["qwen3-yes-no"], tmp_path / name,
                        run={"chunk_size": 40, "stall_timeout": 120, **executor})
        result = run_job(load_spec(job))
        assert result.total_pairs == 200 and result.run_info["execution"]["executor"] == "ray"
        got, expected = scores(tmp_path / name), scores(tmp_path / "local")
        assert got.drop("score").equals(expected.drop("score"))
        assert np.abs((got["score"] - expected["score"]).to_numpy()).max() < 1e-5
        assert not ray.is_initialized(), "the job shut down the Ray it started"
    _, left = psutil.wait_procs([p for p in psutil.Process().children(recursive=True) if p.pid not in before],
                                timeout=30)
    assert not left, f"left behind by the two jobs: {[p.cmdline() for p in left]}"


def test_rejected_rows_status_and_exit_codes(gpu_models: dict[str, str], tmp_path: Path) -> None:
    rows = make_pairs(6, 5, seed=2)
    for row in rows[5:10]:  # q001: the query alone does not fit max_model_len 256
        row["query_text"] = " ".join(["water"] * 400)
    rows[12]["passage"] = " "  # an empty document
    source = write_parquet(rows, tmp_path / "pairs.parquet")
    job = write_job(tmp_path / "job.yaml", source, gpu_models["qwen3-yes-no"], tmp_path / "out",
                    run={"executor": "local"})
    refused = run_cli("run", str(job))
    assert refused.exit_code == 2 and "pairs.parquet row " in refused.output
    assert not scored_parts(tmp_path / "out"), "nothing is scored in a job refused for its bad rows"
    skipping = run_cli("run", str(job), "--set", "input.on_bad_rows=skip", "--preview", "0")
    assert skipping.exit_code == 0, skipping.output
    rejects = pl.read_parquet(tmp_path / "out" / "rejects.parquet")
    assert sorted(rejects["row"].to_list()) == [5, 6, 7, 8, 9, 12], "the too-long query's 5 rows and the empty one"
    assert scores(tmp_path / "out").height == 30 - 6
    status = run_cli("status", str(tmp_path / "out"), "--json")
    assert status.exit_code == 0 and json.loads(status.stdout)["state"] == "complete"
