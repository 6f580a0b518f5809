"""Run one job through the local executor and through the Ray executor, on the same pairs, and compare pairs/s.

usage: python scripts/compare_executors.py --pairs PAIRS.parquet --model DIR --work DIR [--set KEY=VALUE ...]
Each executor runs as its own `batchrank run` process (engines can't share one GPU's memory budget); pairs/s is
each run's own run.json figure, which counts from the moment its engine(s) are up. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import yaml


def run_executor(job: Path, executor: str, work: Path, overrides: list[str]) -> dict[str, object]:
    out = work / f"out-{executor}"
    command = [sys.executable, "-m", "batchrank.cli", "run", str(job), "--overwrite", "--preview", "0",
               "--set", f"run.executor={executor}", "--set", f"output.path={out}"]
    for assignment in overrides:
        command += ["--set", assignment]
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    (work / f"log-{executor}.err").write_text(finished.stderr)
    if finished.returncode != 0:
        return {"executor": executor, "failed": finished.stderr[-2000:]}
    info = json.loads((out / "run.json").read_text())
    return {"executor": executor, "pairs": info["pairs"], "pairs_per_second": info["pairs_per_second_this_run"],
            "scoring_seconds": info["wall_seconds_this_run"], "process_seconds": round(wall, 1), "out": str(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--chunk-size", type=int, default=2000)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    job = work / "compare.yaml"
    job.write_text(yaml.safe_dump({
        "input": {"path": args.pairs},
        "model": {"path": args.model, "kind": "qwen3-yes-no", "dtype": args.dtype, "max_model_len": args.max_model_len},
        "run": {"chunk_size": args.chunk_size, "num_workers": 1},
        "output": {"path": str(work / "unused")},
    }))
    results = [run_executor(job, executor, work, args.overrides) for executor in ("local", "ray")]
    print("| executor | pairs | pairs/s | scoring s | process s |\n| --- | --- | --- | --- | --- |")
    for r in results:
        if "failed" in r:
            print(f"| {r['executor']} | FAILED | | | |")
            continue
        print(f"| {r['executor']} | {r['pairs']} | {r['pairs_per_second']} | {r['scoring_seconds']} | {r['process_seconds']} |")
    if all("failed" not in r for r in results):
        local, ray = results
        print(f"ray / local pairs/s: {ray['pairs_per_second'] / local['pairs_per_second']:.3f}")
        a = pl.read_parquet(f"{local['out']}/scores/*.parquet").sort("query_id", "doc_id")
        b = pl.read_parquet(f"{ray['out']}/scores/*.parquet").sort("query_id", "doc_id")
        print(f"same pairs: {a.select('query_id', 'doc_id').equals(b.select('query_id', 'doc_id'))}, "
              f"max |score difference|: {(a['score'] - b['score']).abs().max():.2e}")
    (work / "compare.json").write_text(json.dumps(results, indent=1))
    failed = [r for r in results if "failed" in r]
    for r in failed:
        print(f"{r['executor']} failed:\n{r['failed']}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
