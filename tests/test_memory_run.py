"""python -m batchrank.bench.memory_run on the CPU: the tiny model, short and longer-than-max_model_len documents
(two `batchrank run` processes, about a minute on 2 cores). The GPU's memory run is this tool; it must work before a
GPU machine's time is spent on it. The long documents are sized from the tokenizer (as on the GPU, where sizing
them in words fell short of max_model_len); --doc-words and the failure when none is cut are test_bench_shared's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO


def test_memory_run_truncates_the_long_documents_and_samples_memory(tiny_model: str, tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "batchrank.bench.memory_run", "--model", tiny_model, "--max-model-len", "1024",
        "--dtype", "float32", "--queries", "1", "--docs-per-query", "4", "--chunk-size", "2",
        "--engine-json", '{"max_num_seqs": 8}', "--run-json", '{"executor": "local", "chunks_in_flight_per_worker": 1}',
        "--run-timeout", "500", "--work", str(tmp_path / "work"), "--out-md", str(tmp_path / "memory.md"),
        "--out-json", str(tmp_path / "memory.json"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in (tmp_path / "memory.md").read_text().splitlines()
            if line.startswith("| MS MARCO") or line.startswith("| longer")]
    assert len(rows) == 2
    (short, long) = ([cell.strip() for cell in row] for row in rows)
    # documents | pairs | prompt tokens a pair | truncated to fit | peak host memory | peak GPU memory | wall
    assert short[1] == long[1] == "4"
    assert short[3] == "0" and long[3] == "4", "every long document was cut to fit, none of the short ones"
    assert int(short[2].replace(",", "")) < 1024 and 900 < int(long[2].replace(",", "")) <= 1024
    for row in (short, long):
        assert row[4].endswith(" GiB") and float(row[4].split()[0]) > 0.2, "the run's memory was sampled"
    assert "python -m batchrank.bench.memory_run --model" in (tmp_path / "memory.md").read_text()
    for result in json.loads((tmp_path / "memory.json").read_text()):
        assert result["executor"] == "local" and result["returncode"] == 0
    for name in ("MS", "longer"):  # both runs had the options' settings
        job = yaml.safe_load((tmp_path / "work" / f"job-{name}.yaml").read_text())
        assert job["run"] == {"chunk_size": 2, "executor": "local", "chunks_in_flight_per_worker": 1}
        assert job["model"]["engine"] == {"max_num_seqs": 8}
    assert "long passages: " in done.stdout and " tokens a word -> " in done.stdout
