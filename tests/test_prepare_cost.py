"""python -m batchrank.bench.prepare_cost: batchrank's own CPU work for one chunk (no engine; seconds)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_it_times_tokenizing_and_writing_a_chunk() -> None:
    done = subprocess.run([sys.executable, "-m", "batchrank.bench.prepare_cost", "--pairs", "150", "--repeats", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"^150 pairs, \d+\.\d prompt tokens a pair, TOKENIZERS_PARALLELISM=\S+, median of 1:$", done.stdout, re.MULTILINE)
    for step in ("tokenize, the tokenizer's own call:", "tokenize, backend encode_batch_fast:",
                 "write the part (rank, Parquet, fsync):"):
        (line,) = [line for line in done.stdout.splitlines() if step in line]
        assert float(line.split()[-2]) > 0, line
