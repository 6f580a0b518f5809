"""python -m batchrank.bench.dispatch_sim: the Ray executor's dispatch with fixed-speed scorers (a smoke run: 2
actors, 12 chunks), a chunk's read cost against the input's row groups, ray.wait's cost, and the driver's timing that
it reads from run.json (execute.base.DispatchTiming), which every executor records."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import make_pairs, run_cli, write_job, write_parquet

TOOL = [sys.executable, "-m", "batchrank.bench.dispatch_sim"]


def test_the_simulation_runs_real_actors_and_reports_the_driver(tmp_path):
    result = subprocess.run(
        [*TOOL, "--workers", "2", "--chunk-size", "300", "--pairs", "3600", "--rate", "6000", "--row-group-rows", "600",
         "--window", "1", "--work", str(tmp_path), "--json", str(tmp_path / "sim.json")],
        capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    [run] = json.loads((tmp_path / "sim.json").read_text())
    assert run["workers"] == 2 and run["chunks"] == 12 and run["ideal_pairs_per_second"] == 12000
    assert 0 < run["pairs_per_second"] <= 12000 * 1.05  # a worker cannot beat its scorer's speed
    assert run["driver_busy_ms_per_chunk"] > 0 and run["parts_per_second"] > 0
    assert run["read_amplification"] == 2.0  # 300-row chunks decode their 600-row group
    assert len(list((tmp_path / "out-2w-300c-600g" / "scores").glob("part-*.parquet"))) == 12
    spec = json.loads((tmp_path / "out-2w-300c-600g" / "run.json").read_text())["spec"]
    assert spec["run"]["chunks_in_flight_per_worker"] == 1  # --window


def test_a_chunks_read_cost_against_the_row_group_size(tmp_path):
    """--read-cost: MS MARCO-shaped pairs (the throughput bench's synthetic ones) with each row group size."""
    result = subprocess.run([*TOOL, "--chunk-size", "200", "--pairs", "2000", "--read-cost", "100", "1000",
                             "--work", str(tmp_path), "--json", str(tmp_path / "read.json")],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    small, large = json.loads((tmp_path / "read.json").read_text())
    assert (small["row_group_rows"], large["row_group_rows"]) == (100, 1000)
    assert small["rows_decoded_per_chunk"] == 200 and large["rows_decoded_per_chunk"] == 1000
    assert small["read_ms_per_chunk"] > 0 and large["bytes_per_pair_on_disk"] > 20
    assert len(result.stdout.splitlines()) == 2  # one JSON line a measurement
    refused = subprocess.run([*TOOL, "--chunk-size", "2000", "--pairs", "3000", "--read-cost"],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--pairs 3000 must hold at least two chunks of 2000" in refused.stderr


def test_ray_wait_in_a_cluster_of_its_own(tmp_path):
    """--ray-wait starts a local Ray cluster of its own (address "local") and stops it."""
    result = subprocess.run([*TOOL, "--ray-wait", "2", "8", "--json", str(tmp_path / "wait.json")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads((tmp_path / "wait.json").read_text())
    assert [r["in_flight"] for r in rows] == [2, 8] and all(r["ray_wait_ms"] > 0 for r in rows)


def test_run_json_records_the_dispatch(tmp_path, fake_engine):
    data = write_parquet(make_pairs(6, 5), tmp_path / "in" / "pairs.parquet")
    job = write_job(tmp_path / "job.yaml", data, "/nonexistent/model", tmp_path / "out",
                    run={"chunk_size": 10, "executor": "local"})
    assert run_cli("run", str(job), "--preview", "0").exit_code == 0
    dispatch = json.loads((tmp_path / "out" / "run.json").read_text())["execution"]["dispatch"]
    assert dispatch["chunks"] == 3 and dispatch["seconds"] >= dispatch["busy_seconds"] >= 0
    assert set(dispatch) == {"chunks", "seconds", "busy_seconds", "busy_ms_per_chunk", "cpu_ms_per_chunk",
                             "chunks_per_second"}
