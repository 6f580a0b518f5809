"""python -m batchrank.bench.resume_bench at a toy size: a fabricated finished output of 30 parts, then the resume
check and `batchrank status` timed with the ledger, compacted and without it (subprocesses; about half a minute)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl

TOOL = [sys.executable, "-m", "batchrank.bench.resume_bench"]


def test_make_a_finished_output_then_time_finding_what_is_done(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run([*TOOL, "make", str(out), "--parts", "30", "--rows", "20", "--processes", "1",
                           "--finished", "3"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "wrote 30 parts of 20 rows" in done.stdout
    assert (out / "_SUCCESS").is_file() and len(list((out / "scores").glob("part-*.parquet"))) == 30
    qrels = pl.read_parquet(tmp_path / "out-qrels.parquet")
    assert qrels.height == 20  # --finished 3: every third of the 60 queries judged
    log = tmp_path / "moto.log"
    log.write_text("")
    done = subprocess.run([*TOOL, "time", str(out), "--requests", str(log)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    steps = {name: json.loads("{" + numbers) for name, _, numbers in
             (line.partition(": {") for line in done.stdout.splitlines())}  # NAME: {JSON}
    resumed = steps["resume (ledger in 1 files)"]
    assert resumed["done"] == 30 and resumed["requests"] == 0 and resumed["process_s"] > 0
    assert steps["resume (no ledger: every footer)"]["done"] == 30
    assert steps["batchrank status (ledger in 1 files)"]["exit"] == 0
    done = subprocess.run([*TOOL, "time", str(out), "--skip-footers"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "every footer" not in done.stdout, done.stderr[-2000:]
