"""python -m batchrank.bench.scale_bench at a toy size: `batchrank validate` and `run` up to its plan on generated
grouped and scattered inputs, with the fake scorer (no model; a few subprocesses, about half a minute)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

TOOL = [sys.executable, "-m", "batchrank.bench.scale_bench"]


def rows(stdout: str) -> list[dict[str, str]]:
    """The table's rows as {column header: cell}: a column added to the table moves no test."""
    lines = [[cell.strip() for cell in line.split("|")[1:-1]] for line in stdout.splitlines()
             if line.startswith("| ") and not line.startswith("| ---")]
    header, *body = lines
    return [dict(zip(header, row, strict=True)) for row in body]


def test_validate_and_plan_on_grouped_and_scattered_inputs(tmp_path: Path) -> None:
    done = subprocess.run([*TOOL, "--sizes", "2k", "--order", "grouped,scattered", "--files", "2", "--per-query", "100",
                           "--chunk-size", "500", "--staging-mib", "64", "--only", "both", "--work", str(tmp_path),
                           "--delete-after"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = rows(done.stdout.split("\n\n")[-1])  # the final table: every measurement
    assert [(r["pairs"], r["order"], r["files"], r["step"], r["exit"]) for r in table] == [
        ("2,000", "grouped", "1", "validate", "0"), ("2,000", "grouped", "1", "plan", "0"),
        ("2,000", "scattered", "2", "validate", "0"), ("2,000", "scattered", "2", "plan", "0")]
    assert all(float(r["peak RSS (GiB)"]) > 0 for r in table), "the process tree's memory was sampled"
    assert all(float(r["peak RSS (GiB)"]) <= float(r["bound"]) for r in table), "the plan's memory bound holds"
    job = yaml.safe_load((tmp_path / "job-scattered-2000.yaml").read_text())
    assert job["run"] == {"executor": "local", "chunk_size": 500, "staging_sort_mib": 64}
    assert not list(tmp_path.glob("pairs-*")), "--delete-after removed each input once measured"


def test_only_the_plan(tmp_path: Path) -> None:
    done = subprocess.run([*TOOL, "--sizes", "1000", "--order", "grouped", "--per-query", "100", "--only", "plan",
                           "--work", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [r["step"] for r in rows(done.stdout.split("\n\n")[-1])] == ["plan"]
    assert (tmp_path / "pairs-grouped-1000" / "_COMPLETE").is_file()
