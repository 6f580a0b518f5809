"""The Ray executor on CPU actors: same output as the local executor, survives a killed actor or driver.

The kill tests run actors with tests/fake_scorer.py's FakeScorer, shipped to them through the scorer factory (no
engine start per actor; deterministic scores, so the output must equal the local one exactly); the cluster tests
run the real vLLM engine in each actor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from batchrank.execute.ray_executor import worker_processes
from conftest import (
    BATCHRANK,
    REPO,
    make_pairs,
    run_cli,
    scored_parts,
    wait_for_parts,
    write_job,
    write_parquet,
)

RAY = str(Path(sys.executable).with_name("ray"))
FAKE_BATCHRANK = [sys.executable, str(Path(__file__).with_name("fake_scorer.py"))]
NO_MODEL = "/nonexistent/model"


def start_fake(job: Path, log: Path, **env: str) -> subprocess.Popen:
    """`batchrank run JOB` with FakeScorer in the driver and in every Ray actor (they import tests/ too)."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), str(REPO)]), **env}
    with open(log, "w") as handle:
        return subprocess.Popen(FAKE_BATCHRANK + ["run", str(job)], stdout=handle, stderr=subprocess.STDOUT,
                                text=True, env=environment)


@pytest.fixture(scope="module")
def fake_pairs_and_local_output(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ray-fake-input")
    source = write_parquet(make_pairs(80, 25, seed=21), root / "pairs.parquet")  # 2,000 pairs, 25 chunks
    job = write_job(root / "local.yaml", source, NO_MODEL, root / "local", run={"chunk_size": 80, "executor": "local"})
    process = start_fake(job, root / "local.log")
    assert process.wait(timeout=300) == 0, (root / "local.log").read_text()
    return source, root / "local"


def read(out: Path) -> pl.DataFrame:
    return pl.read_parquet(str(out / "scores" / "*.parquet")).sort("query_id", "doc_id")


def assert_same_output(got: pl.DataFrame, expected: pl.DataFrame) -> None:
    assert got.height == expected.height and got.select("query_id", "doc_id").is_unique().all()
    assert got.drop("score").equals(expected.drop("score"))
    # float32 noise: which pairs share an engine step, and what the prefix cache holds, differ between runs
    # (seen up to 1.2e-6 on these probabilities)
    assert (got["score"] - expected["score"]).abs().max() < 5e-6


@pytest.fixture(scope="module")
def pairs_and_local_output(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ray-input")
    source = write_parquet(make_pairs(80, 25, seed=21), root / "pairs.parquet")  # 2,000 pairs, 25 chunks
    job = write_job(root / "local.yaml", source, tiny_model, root / "local", run={"chunk_size": 80, "executor": "local"})
    assert run_cli("run", str(job)).exit_code == 0
    return source, root / "local"


@pytest.fixture(autouse=True)
def _no_ray_left_behind():
    yield
    subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)


def test_two_actors_one_killed_mid_job_give_the_local_output(fake_pairs_and_local_output, tmp_path) -> None:
    """Each actor holds several chunks in flight; the killed one's chunks go back to the queue."""
    source, local_out = fake_pairs_and_local_output
    out = tmp_path / "ray"
    run = {"chunk_size": 80, "executor": "ray", "num_workers": 2, "chunks_in_flight_per_worker": 3}
    job = write_job(tmp_path / "job.yaml", source, NO_MODEL, out, run=run)
    process = start_fake(job, tmp_path / "run.log", FAKE_SCORER_SLEEP="0.3")
    wait_for_parts(process, out, 4)
    workers = worker_processes()
    assert len(workers) == 2, "two actors, each hosting an engine"
    workers[0].send_signal(signal.SIGKILL)
    process.wait(timeout=600)
    output = (tmp_path / "run.log").read_text()
    assert process.returncode == 0, output
    assert "died" in output, "the driver must notice the lost actor"
    info = json.loads((out / "run.json").read_text())
    assert info["execution"]["executor"] == "ray" and info["execution"]["workers"] == 2
    assert len(info["execution"]["per_worker"]) >= 2
    assert read(out).equals(read(local_out)), "the same scores, to the bit"


def test_driver_killed_then_rerun_completes_to_the_same_output(fake_pairs_and_local_output, tmp_path) -> None:
    source, local_out = fake_pairs_and_local_output
    out = tmp_path / "ray"
    job = write_job(tmp_path / "job.yaml", source, NO_MODEL, out, run={"chunk_size": 80, "executor": "ray", "num_workers": 1})
    process = start_fake(job, tmp_path / "killed.log", FAKE_SCORER_SLEEP="0.3")
    wait_for_parts(process, out, 3)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert 3 <= len(scored_parts(out)) < 25, "the kill must land mid-job"
    subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)  # what an operator does after a crash
    rerun = start_fake(job, tmp_path / "rerun.log")
    assert rerun.wait(timeout=600) == 0, (tmp_path / "rerun.log").read_text()
    assert read(out).equals(read(local_out))


def test_ray_job_submit_to_a_local_cluster(tiny_model: str, tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(REPO / "scripts/ray_submit_smoke.sh"), tiny_model, str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    scores = pl.read_parquet(str(tmp_path / "out" / "scores" / "*.parquet"))
    assert scores.height == 60 and (tmp_path / "out" / "_SUCCESS").exists()


def test_auto_puts_two_engines_on_each_gpu_of_a_cluster_for_a_small_model(pairs_and_local_output, tiny_model,
                                                                           tmp_path) -> None:
    """A cluster with one (declared) GPU: `auto` picks Ray, two actors with half a GPU each, the local output."""
    source, local_out = pairs_and_local_output
    out = tmp_path / "ray"
    job = write_job(tmp_path / "job.yaml", source, tiny_model, out, run={"chunk_size": 80})  # executor: auto
    environment = {**os.environ, "RAY_ADDRESS": "127.0.0.1:6380", "RAY_AUTH_MODE": "token",
                   "RAY_AUTH_TOKEN": os.urandom(32).hex()}
    # The GPU is a declared resource: Ray places actors by it, and the CPU build of vLLM scores on the CPUs.
    subprocess.run([RAY, "start", "--head", "--port", "6380", "--num-cpus", "2", "--num-gpus", "1",
                    "--disable-usage-stats", "--include-dashboard", "false"],
                   check=True, capture_output=True, timeout=180, env=environment)
    result = subprocess.run([BATCHRANK, "run", str(job)], capture_output=True, text=True, timeout=900, env=environment)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    execution = json.loads((out / "run.json").read_text())["execution"]
    assert execution["executor"] == "ray" and execution["engines_per_gpu"] == 2
    assert execution["workers"] == 2 and execution["worker_resources"] == {"num_gpus": 0.5, "num_cpus": 1}
    assert_same_output(read(out), read(local_out))
