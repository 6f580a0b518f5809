"""`batchrank status OUTPUT`: the state and its exit code (output/status.py), and the fast path: the ledger answers
for the parts, none is opened, and nothing in the directory is written (a run may be going on)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from checkpoint_fixtures import FooterReads, fabricate

from batchrank.output.status import EXIT_CODES
from conftest import run_cli


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def status(root: Path, *options: str) -> tuple[int, str]:
    result = run_cli("status", str(root), *options)
    return result.exit_code, result.output


def test_complete_is_exit_0(tmp_path, monkeypatch):
    fabricate(tmp_path / "out", 6, monkeypatch=monkeypatch)
    (tmp_path / "out" / "_SUCCESS").write_text("")
    code, output = status(tmp_path / "out")
    assert code == EXIT_CODES["complete"] == 0
    assert output.splitlines() == [f"{tmp_path / 'out'}: complete", "chunks: 6/6  rows scored: 36/36"]


def test_stopped_is_exit_5_and_counts_what_is_done(tmp_path, monkeypatch):
    fabricate(tmp_path / "out", 6, recorded=4, monkeypatch=monkeypatch)
    (tmp_path / "out" / "scores" / "part-000005.parquet").unlink()
    code, output = status(tmp_path / "out")
    assert code == EXIT_CODES["stopped"] == 5
    assert "stopped (no run holds it" in output and "chunks: 5/6  rows scored: 30/36" in output


def test_failed_is_exit_4_with_the_last_error(tmp_path, monkeypatch):
    fabricate(tmp_path / "out", 3, monkeypatch=monkeypatch)
    failure = {"message": "chunk 2 failed 2 time(s)", "exit_code": 1, "at": "2026-12-01T10:00:00+0000"}
    (tmp_path / "out" / "_FAILED.json").write_text(json.dumps(failure))
    code, output = status(tmp_path / "out")
    assert code == EXIT_CODES["failed"] == 4
    assert "failed: chunk 2 failed 2 time(s) (exit 1, 2026-12-01T10:00:00+0000)" in output


HOLD_THE_LOCK = """
import sys
from batchrank.output.layout import OutputLayout
from batchrank.output.lock import OutputLock
OutputLock(OutputLayout(sys.argv[1])).acquire()
print("held", flush=True)
sys.stdin.read()
"""


def test_running_is_exit_3_naming_the_holder(tmp_path, monkeypatch):
    fabricate(tmp_path / "out", 3, monkeypatch=monkeypatch)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(tmp_path / "out")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        code, output = status(tmp_path / "out", "--json")
    finally:
        holder.communicate("")
    state = json.loads(output)
    assert code == EXIT_CODES["running"] == 3
    assert state["state"] == "running" and state["run"]["pid"] == holder.pid and state["exit_code"] == 3


def test_not_an_output_directory_is_exit_2(tmp_path):
    code, output = status(tmp_path)
    assert code == 2 and "no job.json here" in output


def test_json_has_every_count(tmp_path, monkeypatch):
    fabricate(tmp_path / "out", 4, rejected={2: 2}, monkeypatch=monkeypatch)
    code, output = status(tmp_path / "out", "--json")
    state = json.loads(output)
    assert code == 5
    assert {k: state[k] for k in ("state", "chunks_done", "chunks", "rows_scored", "rows_planned",
                                  "rejected_while_scoring", "exit_code")} == {
        "state": "stopped", "chunks_done": 4, "chunks": 4, "rows_scored": 22, "rows_planned": 24,
        "rejected_while_scoring": 2, "exit_code": 5}


def test_the_fast_path_opens_no_part_and_writes_nothing(tmp_path, monkeypatch):
    """A ledger in several batches and a damaged part: status opens only that part, and leaves it (and the
    ledger) as it found them; repairing and compacting are the run's."""
    fabricate(tmp_path / "out", 20, monkeypatch=monkeypatch)
    part = tmp_path / "out" / "scores" / "part-000007.parquet"
    part.write_bytes(part.read_bytes()[:-10])
    time.sleep(0.01)
    before = snapshot(tmp_path / "out")
    reads = FooterReads(monkeypatch)
    code, output = status(tmp_path / "out")
    assert code == 5 and "chunks: 19/20" in output
    assert reads.parts == 1
    assert snapshot(tmp_path / "out") == before


@pytest.mark.parametrize("recorded", [0, 15])
def test_parts_the_ledger_does_not_hold_yet_are_counted(tmp_path, monkeypatch, recorded):
    """While a run goes on, the newest parts are not in the ledger yet (and none is, before its first batch)."""
    fabricate(tmp_path / "out", 20, recorded=recorded, monkeypatch=monkeypatch)
    reads = FooterReads(monkeypatch)
    code, output = status(tmp_path / "out")
    assert code == 5 and "chunks: 20/20  rows scored: 120/120" in output and reads.parts == 20 - recorded
