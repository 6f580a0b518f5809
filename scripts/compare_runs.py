"""Run one job under several settings on the same pairs and compare pairs/s (executors, workers, GPUs, failures).

usage (repo root):
  python scripts/compare_runs.py --pairs PAIRS.parquet --model DIR --work DIR \
      --config local=run.executor=local \
      --config ray=run.executor=ray,run.num_workers=1 \
      [--config two=run.executor=ray,run.num_workers=2 --kill-in two:10]

Each configuration is one `batchrank run` process (engines can't share one GPU's memory budget); its pairs/s is
its run.json figure, which counts from the moment its engine(s) are up to the last part. `--kill-in NAME:PARTS`
adds a run of NAME's settings in which one Ray worker process is SIGKILLed once PARTS parts exist; the table then
shows what the failure cost in seconds against NAME's clean run. Every run's output is checked against the first
configuration's: the same pairs once each, and the largest score difference. Prints a Markdown table; --out-json
keeps everything.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from batchrank.execute.ray_executor import worker_processes


def parse_config(text: str) -> tuple[str, list[str]]:
    name, _, assignments = text.partition("=")
    if not name or not assignments:
        raise SystemExit(f"--config {text!r}: expected NAME=KEY=VALUE[,KEY=VALUE...]")
    return name, [a for a in assignments.split(",") if a]


def run_one(job: Path, name: str, assignments: list[str], work: Path, kill_after_parts: int | None) -> dict[str, Any]:
    out = work / f"out-{name}"
    command = [sys.executable, "-m", "batchrank.cli", "run", str(job), "--overwrite", "--preview", "0",
               "--set", f"output.path={out}"]
    for assignment in assignments:
        command += ["--set", assignment]
    log = work / f"log-{name}.txt"
    started = time.perf_counter()
    killed: dict[str, Any] = {}
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, text=True)
        while kill_after_parts is not None and not killed and process.poll() is None:
            if len(list((out / "scores").glob("part-*.parquet"))) >= kill_after_parts:
                workers = worker_processes()
                if workers:
                    workers[0].send_signal(signal.SIGKILL)
                    killed = {"pid": workers[0].pid, "after_parts": kill_after_parts,
                              "at_seconds": round(time.perf_counter() - started, 1)}
            time.sleep(0.2)
        returncode = process.wait()
    wall = time.perf_counter() - started
    result: dict[str, Any] = {"name": name, "settings": assignments, "process_seconds": round(wall, 1), "log": str(log)}
    if kill_after_parts is not None:
        result["killed"] = killed or "no worker found to kill before the run ended"
    if returncode != 0:
        return {**result, "failed": log.read_text(errors="replace")[-2000:]}
    info = json.loads((out / "run.json").read_text())
    execution = info["execution"]
    return {**result, "pairs": info["pairs"], "pairs_per_second": info["pairs_per_second_this_run"],
            "scoring_seconds": info["wall_seconds_this_run"], "executor": execution["executor"],
            "workers": execution.get("workers", 1), "chunks_retried": execution.get("chunks_retried", []),
            "per_worker": execution.get("per_worker", {}), "out": str(out)}


def check_against(reference: dict[str, Any], result: dict[str, Any]) -> None:
    a = pl.read_parquet(f"{reference['out']}/scores/*.parquet").sort("query_id", "doc_id")
    b = pl.read_parquet(f"{result['out']}/scores/*.parquet").sort("query_id", "doc_id")
    result["same_pairs_once"] = bool(
        b.select("query_id", "doc_id").is_unique().all() and a.select("query_id", "doc_id").equals(b.select("query_id", "doc_id"))
    )
    result["max_score_difference"] = float((a["score"] - b["score"]).abs().max()) if result["same_pairs_once"] else None


def render(results: list[dict[str, Any]]) -> str:
    lines = ["| run | settings | pairs | pairs/s | vs first | scoring s | workers | chunks retried | same pairs | "
             "max score diff |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    first = results[0].get("pairs_per_second")
    for r in results:
        if "failed" in r:
            lines.append(f"| {r['name']} | {' '.join(r['settings'])} | FAILED | | | | | | | |")
            continue
        ratio = f"{r['pairs_per_second'] / first:.2f}x" if first else "n/a"
        diff = "n/a" if r.get("max_score_difference") is None else f"{r['max_score_difference']:.1e}"
        lines.append(
            f"| {r['name']} | {' '.join(r['settings'])} | {r['pairs']:,} | {r['pairs_per_second']:,.1f} | {ratio} | "
            f"{r['scoring_seconds']:.1f} | {r['workers']} | {len(r['chunks_retried'])} | {r.get('same_pairs_once', '-')} "
            f"| {diff} |"
        )
    for r in results:
        if "failure_cost_seconds" in r:
            lines.append(f"\n{r['name']}: one worker SIGKILLed ({r['killed']}); the run took "
                         f"{r['failure_cost_seconds']:+.1f} s against {r['baseline']}'s clean run.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--chunk-size", type=int, default=2000)
    parser.add_argument("--config", action="append", required=True, help="NAME=KEY=VALUE[,KEY=VALUE...]")
    parser.add_argument("--kill-in", action="append", default=[], help="NAME:PARTS, a killed rerun of NAME")
    parser.add_argument("--out-json", default=None)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    job = work / "compare.yaml"
    job.write_text(yaml.safe_dump({
        "input": {"path": args.pairs},
        "model": {"path": args.model, "kind": "qwen3-yes-no", "dtype": args.dtype, "max_model_len": args.max_model_len},
        "run": {"chunk_size": args.chunk_size},
        "output": {"path": str(work / "unused")},
    }))
    configs = dict(parse_config(text) for text in args.config)
    kills = {}
    for text in args.kill_in:
        name, _, parts = text.partition(":")
        if name not in configs or not parts.isdigit():
            raise SystemExit(f"--kill-in {text!r}: expected NAME:PARTS with NAME one of {sorted(configs)}")
        kills[name] = int(parts)
    results = []
    for name, assignments in configs.items():
        results.append(run_one(job, name, assignments, work, None))
        if name in kills:
            killed = run_one(job, f"{name}-killed", assignments, work, kills[name])
            clean = results[-1]
            if "failed" not in killed and "failed" not in clean:
                killed.update(baseline=name, failure_cost_seconds=killed["scoring_seconds"] - clean["scoring_seconds"])
            results.append(killed)
    reference = results[0]
    for result in results[1:]:
        if "failed" not in result and "failed" not in reference:
            check_against(reference, result)
    print(render(results))
    Path(args.out_json or work / "compare.json").write_text(json.dumps(results, indent=1, default=str))
    failed = [r for r in results if "failed" in r or r.get("same_pairs_once") is False]
    for r in failed:
        print(f"{r['name']} failed or differs:\n{r.get('failed', 'different pairs')}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
