"""python -m batchrank.bench.mine_bench at a toy size: a synthetic finished output of 2,000 pairs (texts joined back
from its input by input_row), then `batchrank mine` and `batchrank teacher` timed (subprocesses; seconds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TOOL = [sys.executable, "-m", "batchrank.bench.mine_bench"]


def test_mine_and_teacher_on_a_synthetic_finished_output(tmp_path: Path) -> None:
    base = [*TOOL, "--pairs", "2k", "--per-query", "100", "--chunk-size", "500", "--work", str(tmp_path)]
    done = subprocess.run(base, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    made, *commands = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert made["pairs"] == 2000 and made["generated_s"] > 0
    assert [c["command"].split()[1] for c in commands] == ["mine", "teacher"]
    assert all(c["returncode"] == 0 and c["peak_gib"] > 0 for c in commands), commands
    assert (tmp_path / "mined.parquet").is_file() and (tmp_path / "teacher.parquet").is_file()
    assert len(list((tmp_path / "out" / "scores").glob("part-*.parquet"))) == 4  # --chunk-size 500
    again = subprocess.run([*base, "--only", "teacher"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    made, *commands = [json.loads(line) for line in again.stdout.splitlines() if line.startswith("{")]
    assert made["generated_s"] == 0 and [c["command"].split()[1] for c in commands] == ["teacher"]  # reused
