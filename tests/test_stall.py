"""Nothing waits for ever (issue 20): an engine that holds requests and finishes none of them for run.stall_timeout
ends the job at once with a message naming the chunk, its longest prompt and the engine settings; the finished
parts are kept, `status` says failed and why, and a rerun resumes to the uninterrupted output. The stalling engine
is tests/fake_scorer.py's FakeScorer with FAKE_STALL_QUERY (its step waits until the engine is stopped, as vLLM's
does for a prompt its scheduler never schedules)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from test_robustness import FAKE_BATCHRANK, fake_job, scores

import batchrank
from conftest import make_pairs, run_cli


def test_a_stalled_engine_ends_the_job_within_the_stall_timeout(tmp_path: Path) -> None:
    rows = make_pairs(12, 10)  # 12 queries, chunks of 50 rows: the stall is in chunk 1 (q005..q009)
    job = fake_job(tmp_path, rows, run={"stall_timeout": 2, "chunks_in_flight_per_worker": 1})
    started = time.monotonic()
    result = subprocess.run([*FAKE_BATCHRANK, "run", str(job)], capture_output=True, text=True, timeout=120,
                            env={**_env(), "FAKE_STALL_QUERY": "q007"})
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert ("error: chunk 1 (rows 50..99): the engine held 1 request(s) and finished none of them for "
            in result.stderr)
    assert "(run.stall_timeout 2 s); the longest prompt is " in result.stderr
    assert "engine: max_model_len fake. The engine was stopped." in result.stderr
    assert "finished parts are kept; run the same command again to resume" in result.stderr
    assert elapsed < 2 + 30, f"the job took {elapsed:.0f} s to end"  # the watchdog looks every 0.5 s here
    out = tmp_path / "out"
    failure = json.loads((out / "_FAILED.json").read_text())
    assert failure["error"] == "EngineStalled" and failure["exit_code"] == 1
    assert failure["message"].startswith("chunk 1 (rows 50..99): the engine held 1 request(s)")
    status = run_cli("status", str(out))
    assert status.exit_code == 4
    assert "failed: chunk 1 (rows 50..99): the engine held 1 request(s) and finished none" in status.output
    assert (out / "scores" / "part-000000.parquet").exists(), "chunk 0 was scored before the stall: it is kept"

    rerun = subprocess.run([*FAKE_BATCHRANK, "run", str(job)], capture_output=True, text=True, timeout=120,
                           env=_env())
    assert rerun.returncode == 0, rerun.stderr
    reference = fake_job(tmp_path, rows, out="reference", name="reference.yaml")
    assert subprocess.run([*FAKE_BATCHRANK, "run", str(reference)], capture_output=True, timeout=120,
                          env=_env()).returncode == 0
    assert scores(out).equals(scores(tmp_path / "reference"))


def test_the_python_api_raises_engine_stalled(tmp_path: Path, fake_engine: None,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_STALL_QUERY", "q001")
    job = fake_job(tmp_path, make_pairs(3, 10), run={"stall_timeout": 1})
    with pytest.raises(batchrank.RunFailure) as failure:
        batchrank.run_job(batchrank.load_spec(job))
    assert type(failure.value).__name__ == "EngineStalled"
    assert "finished none of them for" in str(failure.value) and "run.stall_timeout 1 s" in str(failure.value)


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("FAKE_")}
