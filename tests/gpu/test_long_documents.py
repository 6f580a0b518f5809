"""Documents that fill the context are cut and scored on the GPU build (issue 20): vLLM 0.26 never finished a prompt
of exactly max_model_len tokens split over two engine steps (vllm#55427); batchrank computes each prompt in one
step. scripts/memory_run.py, as `gpu_runs.sh memory` runs it: the 0.6B shape at max_model_len 32,768, documents of
1.25-3x that, against MS MARCO-length ones; peak GPU and host memory and pairs/s go to $GPU_SUITE_OUT/memory.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO
from gpu.conftest import ON_CPU


def test_documents_filling_max_model_len_are_cut_and_scored(tmp_path: Path) -> None:
    shape, length, dtype = ("tiny", 1024, "float32") if ON_CPU else ("0.6b", 32768, "bfloat16")
    model = tmp_path / f"model-{shape}"
    subprocess.run([sys.executable, "-m", "batchrank.models.random_qwen3", str(model), "--shape", shape,
                    "--device", "cpu" if ON_CPU else "cuda"], check=True, stdout=subprocess.DEVNULL)
    out = Path(os.environ.get("GPU_SUITE_OUT", tmp_path))
    command = [sys.executable, str(REPO / "scripts" / "memory_run.py"), "--model", str(model), "--max-model-len",
               str(length), "--dtype", dtype, "--queries", "2", "--docs-per-query", "10", "--work", str(tmp_path / "w"),
               # a regression that stalls fails in 2 minutes, not at the suite's timeout
               "--run-json", json.dumps({"executor": "local", "stall_timeout": 120}),
               "--out-md", str(out / "memory.md"), "--out-json", str(out / "memory.json")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=540, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    short, long = json.loads((out / "memory.json").read_text())
    assert short["pairs"] == long["pairs"] == 20
    assert short["truncated_pairs"] == 0 and long["truncated_pairs"] == 20, "every long document was cut, no short one"
    assert long["prompt_tokens"] == 20 * length, "each long prompt fills max_model_len exactly: the case that hung"
