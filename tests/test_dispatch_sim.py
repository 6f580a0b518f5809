"""scripts/dispatch_sim.py: the Ray executor's dispatch with fixed-speed scorers (a smoke run: 2 actors, 12 chunks),
and the driver's timing that it reads from run.json (execute.base.DispatchTiming), which every executor records."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO, make_pairs, run_cli, write_job, write_parquet


def test_the_simulation_runs_real_actors_and_reports_the_driver(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "dispatch_sim.py"), "--workers", "2", "--chunk-size", "300",
         "--pairs", "3600", "--rate", "6000", "--row-group-rows", "600", "--work", str(tmp_path),
         "--json", str(tmp_path / "sim.json")],
        capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    [run] = json.loads((tmp_path / "sim.json").read_text())
    assert run["workers"] == 2 and run["chunks"] == 12 and run["ideal_pairs_per_second"] == 12000
    assert 0 < run["pairs_per_second"] <= 12000 * 1.05  # a worker cannot beat its scorer's speed
    assert run["driver_busy_ms_per_chunk"] > 0 and run["parts_per_second"] > 0
    assert run["read_amplification"] == 2.0  # 300-row chunks decode their 600-row group
    assert len(list((tmp_path / "out-2w-300c-600g" / "scores").glob("part-*.parquet"))) == 12


def test_run_json_records_the_dispatch(tmp_path, fake_engine):
    data = write_parquet(make_pairs(6, 5), tmp_path / "in" / "pairs.parquet")
    job = write_job(tmp_path / "job.yaml", data, "/nonexistent/model", tmp_path / "out",
                    run={"chunk_size": 10, "executor": "local"})
    assert run_cli("run", str(job), "--preview", "0").exit_code == 0
    dispatch = json.loads((tmp_path / "out" / "run.json").read_text())["execution"]["dispatch"]
    assert dispatch["chunks"] == 3 and dispatch["seconds"] >= dispatch["busy_seconds"] >= 0
    assert set(dispatch) == {"chunks", "seconds", "busy_seconds", "busy_ms_per_chunk", "cpu_ms_per_chunk",
                             "chunks_per_second"}
