"""A run killed with SIGKILL mid-job resumes to the output an uninterrupted run gives: no pair lost or doubled, and
the engine processes it started end by themselves (batchrank.reaper), so the rerun needs nobody to clean up."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import polars as pl
import psutil

from conftest import (
    BATCHRANK,
    make_pairs,
    run_cli,
    scored_parts,
    start_batchrank,
    wait_for_parts,
    write_job,
    write_parquet,
)


def test_sigkill_then_rerun_gives_the_uninterrupted_output(tiny_model: str, tmp_path: Path) -> None:
    source = write_parquet(make_pairs(60, 50, seed=11), tmp_path / "pairs.parquet")  # 3,000 pairs, 30 chunks
    killed_out, reference_out = tmp_path / "killed", tmp_path / "reference"
    job = write_job(tmp_path / "job.yaml", source, tiny_model, killed_out, run={"chunk_size": 100})

    process = start_batchrank(job, tmp_path / "killed.log")
    wait_for_parts(process, killed_out, 3)
    engine_processes = psutil.Process(process.pid).children(recursive=True)  # vLLM's engine core, the reaper
    assert any("EngineCore" in " ".join(p.cmdline()) or "EngineCore" in p.name() for p in engine_processes), \
        [p.cmdline() for p in engine_processes]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    _, alive = psutil.wait_procs(engine_processes, timeout=30)
    assert not alive, f"left behind by the killed run: {[p.cmdline() for p in alive]}"
    scored_before_kill = len(scored_parts(killed_out))
    assert 3 <= scored_before_kill < 30, "the kill must land mid-job"
    assert not (killed_out / "_SUCCESS").exists()

    resumed = subprocess.run([BATCHRANK, "run", str(job)], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    assert len(scored_parts(killed_out)) == 30 and (killed_out / "_SUCCESS").exists()
    assert not list((killed_out / "scores").glob(".*tmp*")), "no temporary file may remain"

    reference_job = write_job(tmp_path / "ref.yaml", source, tiny_model, reference_out, run={"chunk_size": 100})
    assert run_cli("run", str(reference_job)).exit_code == 0

    got = pl.read_parquet(str(killed_out / "scores" / "*.parquet")).sort("query_id", "doc_id")
    expected = pl.read_parquet(str(reference_out / "scores" / "*.parquet")).sort("query_id", "doc_id")
    assert got.height == 3000 and got.select("query_id", "doc_id").is_unique().all()
    assert got.drop("score").equals(expected.drop("score"))
    assert (got["score"] - expected["score"]).abs().max() < 1e-6  # float32 noise from prefix-cache reuse
