"""Run one job under several settings on the same pairs and compare pairs/s and scores (executors, workers, GPUs,
batch-invariant kernels, failures).

usage (repo root):
  python -m batchrank.bench.compare_runs --pairs PAIRS.parquet --model DIR --work DIR \\
      --config local=run.executor=local \\
      --config ray=run.executor=ray,run.num_workers=1 \\
      [--config two=run.executor=ray,run.num_workers=2 --kill-in two:10] [--check ray:local]

Each configuration is one `batchrank run` process (engines can't share one GPU's memory budget), with a timeout;
its pairs/s is its run.json figure, from the moment its engine(s) are up to the last part. `--kill-in NAME:PARTS`
adds a run of NAME's settings in which one Ray worker process is SIGKILLed once PARTS parts exist; the table then
shows what the failure cost in seconds against NAME's clean run. Every run's output is checked against the first
configuration's (or, with `--check B:A`, run B against run A): the same pairs once each, the largest score
difference, whether the scores are bit-identical. Prints a Markdown table (--out-md appends it); --out-json keeps
everything.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import psutil
import yaml

from batchrank.bench.agreement import score_agreement
from batchrank.bench.environment import gpu_name
from batchrank.bench.formats import fmt_gib
from batchrank.bench.processes import run_measured
from batchrank.execute.ray_executor import worker_processes


def parse_config(text: str) -> tuple[str, list[str]]:
    """NAME=KEY=VALUE[,KEY=VALUE...] -> (NAME, the --set assignments)."""
    name, _, assignments = text.partition("=")
    if not name or not assignments:
        raise ValueError(f"--config {text!r}: expected NAME=KEY=VALUE[,KEY=VALUE...]")
    return name, [a for a in assignments.split(",") if a]


def parse_checks(texts: list[str], runs: list[str]) -> list[tuple[str, str]]:
    """--check B:A options -> [(B, A)], both run names (checked before anything runs); default: each run against
    the first."""
    checks = []
    for text in texts:
        b, _, a = text.partition(":")
        if a not in runs or b not in runs:
            raise ValueError(f"--check {text!r}: expected B:A with both run names ({', '.join(runs)})")
        checks.append((b, a))
    return checks or [(run, runs[0]) for run in runs[1:]]


def parse_kills(texts: list[str], configs: dict[str, list[str]]) -> dict[str, int]:
    """--kill-in NAME:PARTS options -> {NAME: PARTS}, each NAME a configuration."""
    kills = {}
    for text in texts:
        name, _, parts = text.partition(":")
        if name not in configs or not parts.isdigit():
            raise ValueError(f"--kill-in {text!r}: expected NAME:PARTS with NAME one of {sorted(configs)}")
        kills[name] = int(parts)
    return kills


class WorkerKiller:
    """SIGKILLs one of the run's own Ray worker processes once `after_parts` parts exist in `out` (called while the
    run goes on). Only a descendant of the run's process: another Ray on this machine is never touched."""

    def __init__(self, out: Path, after_parts: int):
        self.out, self.after_parts = out, after_parts
        self.killed: dict[str, Any] = {}

    def __call__(self, seconds: float, run_pid: int) -> None:
        if self.killed or len(list((self.out / "scores").glob("part-*.parquet"))) < self.after_parts:
            return
        try:
            descendants = {p.pid for p in psutil.Process(run_pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            return
        workers = [p for p in worker_processes() if p.pid in descendants]
        if workers:
            workers[0].send_signal(signal.SIGKILL)
            self.killed = {"pid": workers[0].pid, "after_parts": self.after_parts, "at_seconds": round(seconds, 1)}


def run_one(job: Path, name: str, assignments: list[str], work: Path, kill_after_parts: int | None,
            timeout: float) -> dict[str, Any]:
    """One `batchrank run` with these --set assignments, measured; its run.json figures (or why it failed)."""
    out = work / f"out-{name}"
    command = [sys.executable, "-m", "batchrank.cli", "run", str(job), "--overwrite", "--preview", "0",
               "--set", f"output.path={out}"]
    for assignment in assignments:
        command += ["--set", assignment]
    killer = WorkerKiller(out, kill_after_parts) if kill_after_parts is not None else None
    run = run_measured(command, work / f"log-{name}.txt", timeout, on_tick=killer)
    result: dict[str, Any] = {"name": name, "settings": assignments, "process_seconds": round(run.seconds, 1),
                              "log": str(run.log), "peak_gpu_mib": run.peak_gpu_mib, "peak_host_mib": run.peak_host_mib}
    if killer is not None:
        result["killed"] = killer.killed or "no worker found to kill before the run ended"
    if run.returncode != 0:
        reason = f"timed out after {timeout:.0f} s" if run.timed_out else f"exit code {run.returncode}"
        return {**result, "failed": f"{reason}:\n{run.tail(40)}"}
    info = json.loads((out / "run.json").read_text())
    execution, model = info["execution"], info["model"]
    return {**result, "pairs": info["pairs"], "pairs_per_second": info["pairs_per_second_this_run"],
            "scoring_seconds": info["wall_seconds_this_run"], "executor": execution["executor"],
            "workers": execution.get("workers", 1), "engines_per_gpu": execution.get("engines_per_gpu", 1),
            "engine_drains": execution.get("engine_drains"), "chunks_retried": execution.get("chunks_retried", []),
            "lost_workers": execution.get("lost_workers", []),
            "per_worker": execution.get("per_worker", {}),
            "prefix_cache_hit_share": model.get("prefix_cache_hit_share"),
            "engine_start_seconds": model.get("engine_start_seconds"), "out": str(out)}


def check_against(reference: dict[str, Any], result: dict[str, Any]) -> None:
    """Record in `result` whether it scored the reference run's pairs once each, and how far its scores are."""
    a = pl.read_parquet(f"{reference['out']}/scores/*.parquet").sort("query_id", "doc_id")
    b = pl.read_parquet(f"{result['out']}/scores/*.parquet").sort("query_id", "doc_id")
    keys_a, keys_b = a.select("query_id", "doc_id"), b.select("query_id", "doc_id")
    same = bool(keys_b.is_unique().all() and keys_a.equals(keys_b))
    result.update(reference=reference["name"], same_pairs_once=same, max_score_difference=None, bit_identical=None)
    if same:
        result["max_score_difference"] = score_agreement(a, b)["max_abs_diff"]
        result["bit_identical"] = bool((a["score"] == b["score"]).all())


def render(results: list[dict[str, Any]]) -> str:
    """The Markdown table of the runs, and what each killed rerun cost."""
    lines = ["| run | settings | pairs | pairs/s | vs first | scoring s | workers | engine drains | prefix-cache hits "
             "| chunks retried | peak GPU memory | against | same pairs | max score diff | bit-identical |",
             "| --- " * 15 + "|"]
    first = results[0].get("pairs_per_second")
    for r in results:
        if "failed" in r:
            lines.append(f"| {r['name']} | {' '.join(r['settings'])} | FAILED |" + " |" * 12)
            continue
        ratio = f"{r['pairs_per_second'] / first:.2f}x" if first else "n/a"
        diff = "n/a" if r.get("max_score_difference") is None else f"{r['max_score_difference']:.1e}"
        share = r.get("prefix_cache_hit_share")
        lines.append(
            f"| {r['name']} | {' '.join(r['settings'])} | {r['pairs']:,} | {r['pairs_per_second']:,.1f} | {ratio} | "
            f"{r['scoring_seconds']:.1f} | {r['workers']} | {r.get('engine_drains', 'n/a')} | "
            f"{'n/a' if share is None else f'{100 * share:.1f}%'} | {len(r['chunks_retried'])} | "
            f"{fmt_gib(r['peak_gpu_mib'])} | {r.get('reference', '-')} | {r.get('same_pairs_once', '-')} | "
            f"{diff} | "
            f"{r.get('bit_identical', '-')} |")
    for r in results:
        if "failure_cost_seconds" in r:
            lines.append(f"\n{r['name']}: one worker SIGKILLed ({r['killed']}); the run took "
                         f"{r['failure_cost_seconds']:+.1f} s against {r['baseline']}'s clean run.")
    return "\n".join(lines)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """The options; a malformed --config, --kill-in or --check exits 2 naming it."""
    parser = argparse.ArgumentParser(prog="python -m batchrank.bench.compare_runs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--chunk-size", type=int, default=2000)
    parser.add_argument("--config", action="append", required=True, help="NAME=KEY=VALUE[,KEY=VALUE...]")
    parser.add_argument("--kill-in", action="append", default=[], help="NAME:PARTS, a killed rerun of NAME")
    parser.add_argument("--check", action="append", default=[],
                        help="B:A: compare run B's scores with run A's (default: every run with the first)")
    parser.add_argument("--run-timeout", type=float, default=900.0, help="seconds per run before it is killed")
    parser.add_argument("--title", default="")
    parser.add_argument("--out-md", default=None, help="append the table here")
    parser.add_argument("--out-json", default=None)
    args = parser.parse_args(argv)
    try:
        args.configs = dict(parse_config(text) for text in args.config)
        args.kills = parse_kills(args.kill_in, args.configs)
        args.checks = parse_checks(args.check, [*args.configs, *(f"{name}-killed" for name in args.kills)])
    except ValueError as error:
        parser.error(str(error))
    return args


def write_job(args: argparse.Namespace, work: Path) -> Path:
    """WORK/compare.yaml: the job every configuration runs with its own --set assignments."""
    job = work / "compare.yaml"
    job.write_text(yaml.safe_dump({
        "input": {"path": str(Path(args.pairs).resolve())},
        "model": {"path": str(Path(args.model).resolve()), "kind": "qwen3-yes-no", "dtype": args.dtype,
                  "max_model_len": args.max_model_len},
        "run": {"chunk_size": args.chunk_size},
        "output": {"path": str(work / "unused")},
    }))
    return job


def run_all(args: argparse.Namespace, job: Path, work: Path) -> list[dict[str, Any]]:
    """Each configuration's run, and after a --kill-in one its killed rerun with the failure's cost."""
    kills = args.kills
    results = []
    for name, assignments in args.configs.items():
        results.append(run_one(job, name, assignments, work, None, args.run_timeout))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "per_worker"}, default=str), flush=True)
        if name in kills:
            killed = run_one(job, f"{name}-killed", assignments, work, kills[name], args.run_timeout)
            clean = results[-1]
            if "failed" not in killed and "failed" not in clean:
                killed.update(baseline=name, failure_cost_seconds=killed["scoring_seconds"] - clean["scoring_seconds"])
            results.append(killed)
    return results


def main(argv: list[str]) -> None:
    """Run, check and render; exit 1 when a run failed or its output differs from its reference."""
    args = parse_arguments(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results = run_all(args, write_job(args, work), work)
    by_name = {r["name"]: r for r in results}
    for b, a in args.checks:
        if "failed" not in by_name[a] and "failed" not in by_name[b]:
            check_against(by_name[a], by_name[b])
    table = render(results)
    print(table)
    if args.out_md:
        command = shlex.join(["python", "-m", "batchrank.bench.compare_runs", *argv])
        title = f"## {args.title or 'compare_runs'}: {gpu_name()} ({time.strftime('%Y-%m-%d %H:%M %Z')})"
        with open(args.out_md, "a") as handle:
            handle.write(f"\n{title}\n\n```\n{command}\n```\n\n{table}\n")
    Path(args.out_json or work / "compare.json").write_text(json.dumps(results, indent=1, default=str))
    failed = [r for r in results if "failed" in r or r.get("same_pairs_once") is False]
    for r in failed:
        print(f"{r['name']} failed or differs:\n{r.get('failed', 'different pairs')}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
