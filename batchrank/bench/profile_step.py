"""Where one engine step's time goes, before choosing a lever (issue 21): the step split into matrix products,
attention, the rest of the GPU's work and the GPU's idle time (within the step, and before the next one), from
vLLM's torch profiler; beside it vLLM's own MFU figure (its estimated FLOPs over a clean run) and the bench's
computed floor (2 x N FLOP for each prompt token the prefix cache did not serve), at the same peak rate.

One engine (profile_engine.py, in its own process with a timeout) scores the dataset once unprofiled (the clean
run: wall time, engine steps, MFU), then its first --profile-pairs pairs under the profiler. The split is over the
profiled run's full steps (the ramp at the start and the tail are left out); the clean run's step period (its wall
time over its engine steps) shows what the profiler's own overhead added to the idle time. On a CPU the same runs
give the same table (the "GPU" is the CPU's operators), so a bug shows before a GPU call.

usage (repo root; GPU: PYTHONPATH=/tmp/site:.):
  python -m batchrank.bench.profile_step --shape 8b --datasets 100:400 --work /tmp/br/8b --out-md prof.md
  python -m batchrank.bench.profile_step --shape 0.6b --datasets 100:1500 --work /tmp/br/0.6b --plain
  python -m batchrank.bench.profile_step --shape tiny --datasets 20:10 --profile-pairs 100 --dtype float32  # CPU
Exit status: 0 with the table written, 1 when the engine run failed or its trace holds no full step, 2 for a bad
option.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from batchrank.bench.environment import gpu_name, has_gpu, library_versions, setdefault_environment
from batchrank.bench.formats import fmt_percent, fmt_rate
from batchrank.bench.models import compute_floor
from batchrank.bench.options import add_model_options, default_device_and_dtype, json_object
from batchrank.bench.processes import run_measured
from batchrank.bench.synthetic import MS_MARCO_WORDS
from batchrank.bench.system_common import RESULT_MARK
from batchrank.bench.throughput_data import parse_datasets, prepare_all
from batchrank.bench.trace_split import load_trace, split_steps, summarize, top_work


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """The options (argparse's exit 2 for a bad one)."""
    parser = argparse.ArgumentParser(prog="python -m batchrank.bench.profile_step", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_options(parser, "model, data, the trace and the engine's log")
    parser.add_argument("--datasets", type=parse_datasets, default=parse_datasets("100:400"), metavar="DOCS:QUERIES",
                        help="the clean run's pairs (one dataset; default 100:400)")
    parser.add_argument("--profile-pairs", type=int, default=5000,
                        help="pairs of the profiled run: the dataset's first (default 5000, about 50 full steps)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default=None, help="bfloat16 (default), or float32 (the default for tiny on CPU)")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--plain", action="store_true",
                        help="profile vLLM's default engine (the plain anchor's) instead of batchrank's")
    parser.add_argument("--engine-json", type=json_object, default={}, help="engine arguments added on top")
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="dense bf16 rate (H100/H200) for MFU")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for the engine's process")
    parser.add_argument("--title", default="", help="a name for the section (e.g. the gpu_runs.sh entry)")
    parser.add_argument("--out-md", default=None, help="append the section here")
    parser.add_argument("--out-json", default=None, help="everything (default: WORK/profile.json)")
    args = parser.parse_args(argv)
    if len(args.datasets) != 1:
        parser.error("--datasets: profile one dataset at a time")
    if args.profile_pairs < 1:
        parser.error("--profile-pairs: at least 1")
    default_device_and_dtype(args, has_gpu())
    args.doc_words = MS_MARCO_WORDS  # what prepare_dataset reads
    return args


def engine_run(args: argparse.Namespace, work: Path, model_dir: Path, data: dict[str, Any],
               warmup: dict[str, Any]) -> tuple[dict[str, Any] | None, str, Path]:
    """profile_engine's process: its result (None if it failed), why it failed, and its trace directory."""
    trace_dir = work / "profile-trace"
    shutil.rmtree(trace_dir, ignore_errors=True)
    config = {"model": str(model_dir), "dtype": args.dtype, "max_model_len": args.max_model_len,
              "engine": args.engine_json, "plain": args.plain, "pairs": data["path"], "warmup": warmup["path"],
              "profile_pairs": min(args.profile_pairs, data["pairs"]), "trace_dir": str(trace_dir)}
    config_path = work / "profile-config.json"
    config_path.write_text(json.dumps(config, indent=1))
    command = [sys.executable, "-m", "batchrank.bench.profile_engine", str(config_path)]
    print(f"engine: profiling (timeout {args.timeout:.0f} s, log {work / 'logs' / 'profile.log'}) ...", flush=True)
    run = run_measured(command, work / "logs" / "profile.log", args.timeout)
    lines = [line for line in run.log.read_text(errors="replace").splitlines() if line.startswith(RESULT_MARK)]
    if run.returncode != 0 or not lines:
        reason = f"timed out after {args.timeout:.0f} s" if run.timed_out else f"exit code {run.returncode}"
        return None, f"{reason}; log tail:\n{run.tail(30)}", trace_dir
    return json.loads(lines[-1][len(RESULT_MARK):]), "", trace_dir


def find_trace(trace_dir: Path) -> Path:
    """The largest trace file under the directory (the worker's; a front end may write a small one too)."""
    traces = [p for p in trace_dir.rglob("*") if p.name.endswith((".pt.trace.json", ".pt.trace.json.gz"))]
    if not traces:
        raise ValueError(f"no torch profiler trace under {trace_dir}")
    return max(traces, key=lambda p: p.stat().st_size)


def measures(result: dict[str, Any], split: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """The clean run's rates, MFU figures and step period beside the profiled split."""
    clean = result["clean"]
    computed = clean["prompt_tokens"] - clean["prefix_cache_hit_tokens"]
    peak = floor["peak_tflops"] * 1e12
    steps = clean["engine_steps"]
    period = 1000 * clean["seconds"] / steps if steps else None
    return {"pairs_per_second": clean["pairs"] / clean["seconds"],
            "computed_tokens_per_pair": computed / clean["pairs"],
            "bench_floor_percent": 100 * 2 * floor["non_embedding_parameters"] * computed / clean["seconds"] / peak,
            "vllm_tflops": clean["vllm_estimated_flops"] / clean["seconds"] / 1e12,
            "vllm_mfu_percent": 100 * clean["vllm_estimated_flops"] / clean["seconds"] / peak,
            "clean_period_ms": period,
            "clean_idle_ms": None if period is None else max(0.0, period - split["busy_ms"])}


def _cell(ms: float | None, period: float) -> str:
    return "n/a" if ms is None else f"{ms:.2f} ms ({100 * ms / period:.0f}%)"


def render(report: dict[str, Any]) -> str:
    """The Markdown section: heading, command, notes and the one-row table."""
    s, m, clean = report["split"], report["measures"], report["result"]["clean"]
    period = s["period_ms"]
    label = f"random-weight Qwen3-Reranker {report['shape']} shape" if report["shape"] else report["model"]
    engine = "plain vLLM's defaults" if report["plain"] else "batchrank's engine arguments"
    clean_period = "n/a" if m["clean_period_ms"] is None else f"{m['clean_period_ms']:.2f} ms"
    lines = [f"## Engine step profile, {label}{': ' + report['title'] if report['title'] else ''}: {report['gpu']} "
             f"({report['date']})", "", "```", report["command"], "```", "",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
             f"- engine: {engine} ({json.dumps(report['result']['engine_arguments'], default=str)[:400]})",
             f"- clean run: {clean['pairs']:,} pairs in {clean['seconds']:.1f} s = {fmt_rate(m['pairs_per_second'])} "
             f"pairs/s, {clean['engine_steps']:.0f} engine steps, {m['computed_tokens_per_pair']:.1f} computed "
             "tokens a pair (prompt tokens less prefix-cache hits)",
             f"- profiled run: the first {report['result']['profiled']['pairs']:,} pairs in "
             f"{report['result']['profiled']['seconds']:.1f} s; {s['full_steps']} full steps of {s['steps']} "
             f"({s['tokens_per_step']:,.0f} tokens, {s['requests_per_step']:.0f} requests a step; trace "
             f"{report['trace']})",
             f"- {report['device_work']}: matrix products, attention and other work are the device's work within "
             "a step (overlaps counted once); idle within: gaps between its work inside a step; idle between: from "
             "a step's last work to the next step's first. Shares are of the profiled step period",
             f"- MFU at {report['floor']['peak_tflops']:g} TFLOP/s over the clean run: vLLM's (its estimated FLOPs, "
             f"attention included: {m['vllm_tflops']:.1f} TFLOP/s) and the bench's (2 x N x computed tokens, "
             "= % of the computed floor)", "",
             "| step period, profiled | step period, clean run | matrix products | attention | other GPU work | "
             "GPU idle within a step | GPU idle between steps | GPU idle, clean run | vLLM's MFU | bench floor % |",
             "| --- " * 10 + "|",
             f"| {period:.2f} ms | {clean_period} | "
             f"{_cell(s['matmul_ms'], period)} | {_cell(s['attention_ms'], period)} | {_cell(s['other_ms'], period)} | "
             f"{_cell(s['idle_within_ms'], period)} | {_cell(s['idle_between_ms'], period)} | "
             f"{'n/a' if m['clean_idle_ms'] is None else _cell(m['clean_idle_ms'], m['clean_period_ms'])} | "
             f"{fmt_percent(m['vllm_mfu_percent'])} | {fmt_percent(m['bench_floor_percent'])} |", "",
             "Most time, by kernel or operator name (share of the device's work, class):", ""]
    lines += [f"- {100 * w['share']:.1f}% {w['class']}: `{w['name'][:150]}`" for w in report["top_work"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Prepare, run the engine, split its trace, write the section; the exit status."""
    started = time.perf_counter()
    args = parse_arguments(argv)
    setdefault_environment()
    work, model_dir, by_name, warmup = prepare_all(args)
    (data,) = by_name.values()
    result, reason, trace_dir = engine_run(args, work, model_dir, data, warmup)
    if result is None:
        print(f"FAILED: the engine's run: {reason}", file=sys.stderr)
        return 1
    try:
        trace = find_trace(trace_dir)
        steps, device, by_name = split_steps(load_trace(trace))
        split = summarize(steps)
    except ValueError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    floor = compute_floor(model_dir, args.peak_tflops)
    report = {"command": shlex.join(["python", "-m", "batchrank.bench.profile_step", *argv]), "title": args.title,
              "date": time.strftime("%Y-%m-%d %H:%M %Z"), "gpu": gpu_name(), "versions": library_versions(),
              "shape": args.shape, "model": str(model_dir), "plain": args.plain, "dataset": data, "floor": floor,
              "result": result, "trace": str(trace), "split": split, "top_work": top_work(by_name),
              "device_work": "GPU: kernels and memory copies" if device == "gpu" else
              "CPU (no GPU): the operators of the engine's worker stand for the GPU's work",
              "measures": measures(result, split, floor), "total_wall_seconds": time.perf_counter() - started}
    markdown = render(report)
    print("\n" + markdown)
    if args.out_md:
        with open(args.out_md, "a") as handle:
            handle.write("\n" + markdown)
    out_json = Path(args.out_json) if args.out_json else work / "profile.json"
    out_json.write_text(json.dumps(report, indent=1, default=str))
    print(f"everything in {out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
