"""Reranking throughput of batchrank against what a user would write instead, on the same synthetic MS MARCO-shaped
pairs and the same model (issues 7 and 13). The systems (scripts/bench_systems.py says what each one runs):

  batchrank  run_job with its defaults (or --run-json / --engine-json settings)
  fp8        batchrank with model.engine.quantization fp8; its drift from batchrank's scores is reported
  vllm       plain vLLM: the model card's prompt texts, one llm.classify per dataset, vLLM's defaults
  hf         plain transformers with SDPA, padded batches sorted by length

Each system runs in its own subprocess, one after another, with a timeout, and scores every dataset (--datasets
DOCS_PER_QUERY:QUERIES,...) with one engine start. A failed or timed-out system is reported in the table; the others
still run. Per dataset: pairs/s, prompt tokens/s, % of the compute floor (all prompt tokens) and of the computed
floor (less the prefix-cache hits), prefix-cache hits a pair, peak GPU and host memory, engine start, ratio to plain
vLLM. The section is appended to --out-md; everything goes to --out-json (rewritten after every system).

usage (repo root; on the GPU machine with PYTHONPATH=/tmp/site:. and no network):
  python scripts/bench.py --shape 0.6b --datasets 100:1000,1000:50 --systems vllm,batchrank --work /tmp/bench
  python scripts/bench.py --shape 4b --datasets 100:250 --systems vllm,batchrank,fp8 --run-json '{"engines_per_gpu": 1}'
  python scripts/bench.py --shape tiny --datasets 8:4 --dtype float32 --max-model-len 512          # CPU
Exit status: 0 when every system ran on every dataset and batchrank agrees with plain vLLM, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import benchlib as lib
from bench_systems import RESULT_MARK, SYSTEMS

WARMUP_PAIRS = 256
AGREEMENT_LIMIT = 0.05  # bf16: batchrank and plain vLLM differ by ~1e-2 at most; above this the run fails
COMPARISONS = (("batchrank", "vllm"), ("hf", "vllm"), ("fp8", "batchrank"))
LABEL_BASE = {"vllm": "plain vLLM (one llm.classify, defaults)"}


def parse_datasets(text: str) -> list[tuple[int, int]]:
    shapes = []
    for item in filter(None, text.split(",")):
        docs, _, queries = item.partition(":")
        if not (docs.isdigit() and queries.isdigit() and int(docs) > 0 and int(queries) > 0):
            raise argparse.ArgumentTypeError(f"{item!r}: expected DOCS_PER_QUERY:QUERIES, e.g. 100:1000")
        shapes.append((int(docs), int(queries)))
    if not shapes:
        raise argparse.ArgumentTypeError("no dataset given")
    return shapes


def dataset_name(docs: int, queries: int) -> str:
    return f"{docs}x{queries}"


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--model", help="a local model directory (a Qwen3-Reranker or a model of its format)")
    model.add_argument("--shape", choices=["tiny", "0.6b", "4b", "8b"],
                       help="build (or reuse) a random-weight Qwen3 reranker of this real shape in --work")
    parser.add_argument("--device", default=None, help="where to build the random model (default: cuda if present)")
    parser.add_argument("--work", default="bench-work", help="model, data, per-system logs and scores")
    parser.add_argument("--datasets", type=parse_datasets, default=parse_datasets("100:200"),
                        help="DOCS_PER_QUERY:QUERIES,... (default 100:200); each system scores each one")
    parser.add_argument("--doc-words", type=lib.parse_doc_words, default=lib.MS_MARCO_WORDS, metavar="MEDIAN:MAX",
                        help="passage words: log-normal around MEDIAN, at most MAX (default 52:400, MS MARCO-like)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--systems", default="batchrank,vllm,hf", help=f"comma-separated, of {', '.join(SYSTEMS)}")
    parser.add_argument("--fp8-datasets", type=parse_datasets, default=None,
                        help="the datasets the fp8 system scores (default: all); each must be in --datasets")
    parser.add_argument("--dtype", default=None, help="bfloat16 (default), or float32 (the default for tiny on CPU)")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--engine-json", type=json_object, default={}, help="batchrank's model.engine")
    parser.add_argument("--run-json", type=json_object, default={},
                        help="batchrank's run settings, e.g. '{\"engines_per_gpu\": 2}'")
    parser.add_argument("--chunk-size", type=int, default=0, help="batchrank run.chunk_size (0: its default)")
    parser.add_argument("--fp8-engine-json", type=json_object, default={"quantization": "fp8"},
                        help="what the fp8 system adds to model.engine")
    parser.add_argument("--fp8-dtype", default="bfloat16", help="the fp8 system's dtype (FP8 needs bf16 or fp16)")
    parser.add_argument("--hf-batch", type=int, default=256)
    parser.add_argument("--hf-max-pairs", type=int, default=0, help="hf scores the first N pairs of a dataset (0: all)")
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="dense bf16 rate for the floor (H100/H200)")
    parser.add_argument("--system-timeout", type=float, default=1200.0, help="seconds per system before it is killed")
    parser.add_argument("--deadline", type=float, default=0.0,
                        help="seconds for the whole bench (0: none); a system that would run past it is cut short")
    parser.add_argument("--title", default="", help="a name for the section (e.g. the gpu_runs.sh entry)")
    parser.add_argument("--out-md", default="docs/benchmarks.md", help="Markdown file to append the section to")
    parser.add_argument("--out-json", default=None, help="JSON file with everything (default: WORK/bench.json)")
    parser.add_argument("--prepare-only", action="store_true", help="build or reuse the model and data, then stop")
    args = parser.parse_args(argv)
    has_gpu = shutil.which("nvidia-smi") is not None
    args.device = args.device or ("cuda" if has_gpu else "cpu")
    args.dtype = args.dtype or ("float32" if args.shape == "tiny" and not has_gpu else "bfloat16")
    args.system_list = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(args.system_list) - set(SYSTEMS))
    if unknown or not args.system_list:
        parser.error(f"--systems: unknown {unknown}; choose from {', '.join(SYSTEMS)}")
    if args.fp8_datasets and not set(args.fp8_datasets) <= set(args.datasets):
        parser.error("--fp8-datasets: each must be one of --datasets")
    return args


# ---------------------------------------------------------------------------------------------------------------
# Data


def prepare_dataset(work: Path, model_dir: Path, docs: int, queries: int, seed: int, args: argparse.Namespace,
                    limit: int = 0) -> dict[str, Any]:
    """The pairs of one dataset in WORK/data (reused when written before with the same settings), and their stats."""
    median, longest = args.doc_words
    stem = f"pairs-{docs}x{queries}-seed{seed}-words{median}-{longest}-len{args.max_model_len}"
    stem += f"-first{limit}" if limit else ""
    path, stats_path = work / "data" / f"{stem}.parquet", work / "data" / f"{stem}.json"
    if path.is_file() and stats_path.is_file():
        return json.loads(stats_path.read_text())
    rows = lib.synthetic_pairs(queries, docs, seed, args.doc_words)
    rows = rows[:limit] if limit else rows
    counts, shortened = lib.fit_documents(rows, lib.token_counter(model_dir), args.max_model_len)
    lib.write_pairs(rows, path)
    stats = {"name": dataset_name(docs, queries), "docs_per_query": docs, "queries": queries, "seed": seed,
             "pairs": len(rows), "prompt_tokens": sum(counts), "mean_prompt_tokens": sum(counts) / len(rows),
             "max_prompt_tokens": max(counts), "shortened_documents": shortened, "doc_words": [median, longest],
             "path": str(path)}
    stats_path.write_text(json.dumps(stats, indent=1))
    return stats


def write_config(args: argparse.Namespace, work: Path, model_dir: Path, data: dict[str, dict[str, Any]],
                 warmup: dict[str, Any]) -> Path:
    fp8 = [dataset_name(*d) for d in args.fp8_datasets] if args.fp8_datasets else list(data)
    config = {
        "model": str(model_dir), "work": str(work), "dtype": args.dtype, "max_model_len": args.max_model_len,
        "engine": args.engine_json, "run": args.run_json, "chunk_size": args.chunk_size,
        "fp8_engine": args.fp8_engine_json, "fp8_dtype": args.fp8_dtype, "hf_batch": args.hf_batch,
        "hf_max_pairs": args.hf_max_pairs, "warmup": warmup["path"], "warmup_pairs": warmup["pairs"],
        "datasets": {name: stats["path"] for name, stats in data.items()},
        "systems": {s: fp8 if s == "fp8" else list(data) for s in args.system_list},
    }
    path = work / "bench-config.json"
    path.write_text(json.dumps(config, indent=1))
    return path


# ---------------------------------------------------------------------------------------------------------------
# Running the systems


def run_system(system: str, config_path: Path, work: Path, timeout: float) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).with_name("bench_systems.py")), system, str(config_path)]
    run = lib.run_measured(command, work / "logs" / f"{system}.log", timeout)
    result: dict[str, Any] = {"datasets": {}}
    for line in run.log.read_text(errors="replace").splitlines():
        if line.startswith(RESULT_MARK):
            result = json.loads(line[len(RESULT_MARK):])
    result.update(system=system, returncode=run.returncode, process_wall_seconds=run.seconds, log=str(run.log),
                  gpu_memory_before_mib=run.gpu_memory_before_mib, peak_gpu_memory_mib=run.peak_gpu_mib,
                  peak_host_memory_mib=run.peak_host_mib, failed=run.returncode != 0)
    if result["failed"]:
        result["reason"] = f"timed out after {timeout:.0f} s" if run.timed_out else f"exit code {run.returncode}"
        result["stderr_tail"] = run.tail()
    return result


def root_cause(result: dict[str, Any]) -> str:
    """The lines of a failed system's whole log that say why (a spawned engine core logs its error above the
    traceback its parent prints, out of reach of the log's tail)."""
    log = Path(result.get("log", ""))
    if not log.is_file():
        return ""
    lines = log.read_text(errors="replace").splitlines()
    marks = ("Error", "error:", "Exception", "CUDA", "memory")
    found = [line for line in lines if any(mark in line for mark in marks) and "Traceback" not in line]
    return "root cause candidates:\n" + "\n".join(line[:300] for line in found[:25])


def print_progress(system: str, result: dict[str, Any]) -> None:
    for name, r in result["datasets"].items():
        if r.get("failed"):
            print(f"{system} {name}: FAILED ({r['reason']})", flush=True)
        else:
            print(f"{system} {name}: {r['pairs']:,} pairs in {r['seconds']:.2f} s = {r['pairs'] / r['seconds']:,.1f} "
                  f"pairs/s; engine start {r.get('engine_start_seconds') or 0:.1f} s", flush=True)
    if result["failed"]:
        print(f"{system}: FAILED ({result['reason']}); log tail:\n{result['stderr_tail']}", flush=True)
        print(root_cause(result), flush=True)


def run_systems(args: argparse.Namespace, config_path: Path, work: Path, started: float,
                save: Any) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for system in args.system_list:
        timeout = args.system_timeout
        if args.deadline:
            left = args.deadline - (time.perf_counter() - started)
            if left < 30:
                results[system] = {"system": system, "failed": True, "datasets": {},
                                   "reason": f"not run: {left:.0f} s left of --deadline {args.deadline:.0f}"}
                print(f"{system}: {results[system]['reason']}", flush=True)
                continue
            timeout = min(timeout, left - 15)
        print(f"{system}: running (timeout {timeout:.0f} s, log {work / 'logs' / f'{system}.log'}) ...", flush=True)
        results[system] = run_system(system, config_path, work, timeout)
        print_progress(system, results[system])
        save(results)
    return results


# ---------------------------------------------------------------------------------------------------------------
# The report


def compute_floor(model_dir: Path, peak_tflops: float) -> dict[str, Any]:
    parameters, formula = lib.non_embedding_parameters(model_dir)
    return {"non_embedding_parameters": parameters, "formula": formula, "peak_tflops": peak_tflops,
            "gflop_per_token": 2 * parameters / 1e9, "tokens_per_second": peak_tflops * 1e12 / (2 * parameters)}


def dataset_rows(name: str, stats: dict[str, Any], floor: dict[str, Any],
                 results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each system's figures on one dataset, with the floors and the ratio to plain vLLM."""
    rows = {s: dict(r["datasets"][name]) for s, r in results.items() if name in r.get("datasets", {})}
    ok = {s: r for s, r in rows.items() if not r.get("failed")}
    out: dict[str, Any] = {"pairs_floor": floor["tokens_per_second"] / stats["mean_prompt_tokens"]}
    # The prefix cache serves each query's shared prefix: the GPU computes the prompt tokens less the hits, which
    # plain vLLM (else batchrank) reports for the same token ids.
    with_hits = [s for s in ("vllm", "batchrank", "fp8") if ok.get(s, {}).get("prefix_cache_hit_tokens") is not None]
    source = with_hits[0] if with_hits else None
    if source:
        computed = (ok[source]["prompt_tokens"] - ok[source]["prefix_cache_hit_tokens"]) / ok[source]["pairs"]
        out.update(computed_tokens_per_pair=computed, computed_floor_source=source,
                   computed_pairs_floor=floor["tokens_per_second"] / computed)
    vllm_rate = ok["vllm"]["pairs"] / ok["vllm"]["seconds"] if "vllm" in ok else None
    for r in ok.values():
        r["pairs_per_second"] = r["pairs"] / r["seconds"]
        r["prompt_tokens_per_second"] = r["prompt_tokens"] / r["seconds"]
        r["percent_of_floor"] = 100 * r["prompt_tokens_per_second"] / floor["tokens_per_second"]
        if "computed_pairs_floor" in out:
            r["percent_of_computed_floor"] = 100 * r["pairs_per_second"] / out["computed_pairs_floor"]
        if r.get("prefix_cache_hit_tokens") is not None:
            r["prefix_cache_hits_per_pair"] = r["prefix_cache_hit_tokens"] / r["pairs"]
        r["ratio_vs_vllm"] = r["pairs_per_second"] / vllm_rate if vllm_rate else None
    out["systems"] = rows
    out["comparisons"] = compare(ok)
    return out


def compare(ok: dict[str, dict[str, Any]]) -> dict[str, Any]:
    import polars as pl

    found = {}
    for a, b in COMPARISONS:
        if a in ok and b in ok:
            left, right = pl.read_parquet(ok[a]["scores_path"]), pl.read_parquet(ok[b]["scores_path"])
            found[f"{a} vs {b}"] = lib.ranking_drift(right, left) if a == "fp8" else lib.score_agreement(left, right)
    return found


def labels(args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> dict[str, str]:
    def batchrank(system: str) -> str:
        first = next((r for r in results.get(system, {}).get("datasets", {}).values() if not r.get("failed")), None)
        name = "batchrank FP8" if system == "fp8" else "batchrank"
        if first is None:
            return name
        executor = first["executor"]
        if executor == "ray":
            executor += f", {first['workers']} engine(s), {first['engines_per_gpu']} per GPU"
        return f"{name} (run_job, {executor}, chunk_size {first['chunk_size']})"

    return {"batchrank": batchrank("batchrank"), "fp8": batchrank("fp8"), **LABEL_BASE,
            "hf": f"plain transformers (SDPA, batch {args.hf_batch})"}


def problems_of(results: dict[str, dict[str, Any]], runs: dict[str, dict[str, Any]]) -> list[str]:
    problems = [f"{s}: {r['reason']}" for s, r in results.items() if r.get("failed")]
    for name, data in runs.items():
        problems += [f"{s} on {name}: {r['reason']}" for s, r in data["systems"].items() if r.get("failed")]
        agreement = data["comparisons"].get("batchrank vs vllm")
        if agreement is not None and not agreement["max_abs_diff"] <= AGREEMENT_LIMIT:
            problems.append(f"{name}: batchrank and plain vLLM scores differ by {agreement['max_abs_diff']:.3g} "
                            f"(limit {AGREEMENT_LIMIT})")
    return problems


def render_rows(name: str, data: dict[str, Any], report: dict[str, Any]) -> list[str]:
    lines = []
    for system in report["systems_run"]:
        if name not in report["system_datasets"][system]:
            continue
        r = data["systems"].get(system)
        label = report["labels"][system]
        if r is None or r.get("failed"):
            reason = r["reason"] if r else report["systems"][system].get("reason", "not run")
            lines.append(f"| {name} | {label} | FAILED: {reason} |" + " |" * 9)
            continue
        process = report["systems"][system]
        hits = r.get("prefix_cache_hits_per_pair")
        ratio = f"{r['ratio_vs_vllm']:.2f}x" if r.get("ratio_vs_vllm") is not None else "n/a"
        start = r.get("engine_start_seconds") or process.get("engine_start_seconds")
        lines.append(
            f"| {name} | {label} | {r['pairs']:,} | {lib.fmt_rate(r['pairs_per_second'])} | {ratio} | "
            f"{lib.fmt_int(r['prompt_tokens_per_second'])} | {lib.fmt_percent(r['percent_of_floor'])} | "
            f"{lib.fmt_percent(r.get('percent_of_computed_floor'))} | {'n/a' if hits is None else f'{hits:.1f}'} | "
            f"{lib.fmt_gib(process.get('peak_gpu_memory_mib'))} | {lib.fmt_gib(process.get('peak_host_memory_mib'))} | "
            f"{'n/a' if start is None else f'{start:.1f} s'} |")
    return lines


def render_comparisons(name: str, data: dict[str, Any]) -> list[str]:
    notes = {"batchrank vs vllm": f"the same token ids; bf16 differs by ~1e-2 at most as batches and prefix-cache "
             f"reuse differ, float32 by ~1e-6; above {AGREEMENT_LIMIT} the run fails",
             "hf vs vllm": "padded batches in another kernel stack; reported, not checked",
             "fp8 vs batchrank": "FP8 against bf16 on the same pairs (random weights: this is arithmetic drift, not "
             "ranking quality)"}
    lines = []
    for key, c in data["comparisons"].items():
        text = (f"- {name}, scores {key}: max |diff| {c['max_abs_diff']:.2e}, mean {c['mean_abs_diff']:.2e} over "
                f"{c['pairs_compared']:,} pairs")
        if "top_k_changed_share" in c:
            text += (f"; top-{c['k']} set changed for {100 * c['top_k_changed_share']:.1f}% of {c['queries']:,} "
                     f"queries; Kendall's tau a query: mean {c['mean_kendall_tau']:.4f}, "
                     f"min {c['min_kendall_tau']:.4f}")
        lines.append(text + f" ({notes[key]})")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    floor, settings = report["floor"], report["settings"]
    first = next(iter(report["datasets"].values()))
    sizes = ", ".join(f"{d['pairs']:,} pairs ({d['queries']:,} queries x {d['docs_per_query']})"
                      for d in report["datasets"].values())
    lines = [f"## {report['model_label']}{': ' + report['title'] if report['title'] else ''}: {sizes}, "
             f"{report['gpu']} ({report['date']})", "", "```", report["command"], "```", "",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
             f"- data: synthetic MS MARCO-shaped pairs grouped by query (seed {first['seed']}): queries 3-10 words, "
             f"passages log-normal around {first['doc_words'][0]} words in [8, {first['doc_words'][1]}], the model "
             f"card's Qwen3-Reranker prompt; " + "; ".join(
                 f"{n}: {d['mean_prompt_tokens']:.1f} prompt tokens a pair, {d['shortened_documents']} passages "
                 f"shortened to fit" for n, d in report["datasets"].items()),
             f"- dtype {settings['dtype']}, max_model_len {settings['max_model_len']}; batchrank model.engine "
             f"{json.dumps(settings['engine'])}, run {json.dumps(settings['run'])}; fp8 adds "
             f"{json.dumps(settings['fp8_engine'])} with dtype {settings['fp8_dtype']}; plain vLLM: its defaults",
             "- timed: after the engine start and a warm-up on 256 other pairs; batchrank: run.json's clock (engine(s) "
             "up -> last part written; on Ray each dataset's run_job starts fresh actors, no warm-up); plain vLLM: "
             "one llm.classify(texts); transformers: tokenize, sort by length, padded batches",
             f"- floor: 2 x N x tokens / {floor['peak_tflops']:g} TFLOP/s, {floor['formula']}, = "
             f"{floor['gflop_per_token']:.3f} GFLOP a token -> {lib.fmt_int(floor['tokens_per_second'])} tokens/s; "
             "computed floor: over prompt tokens less prefix-cache hits (" + "; ".join(
                 f"{n}: {d['computed_tokens_per_pair']:.1f} computed a pair, from {d['computed_floor_source']}, "
                 f"{lib.fmt_rate(d['computed_pairs_floor'])} pairs/s" for n, d in report["runs"].items()
                 if "computed_tokens_per_pair" in d) + ")",
             "- memory: nvidia-smi's memory.used (vLLM reserves gpu_memory_utilization of the card) and the resident "
             "set of the system's process tree, sampled every 0.2 s", "",
             "| candidates x queries | system | pairs | pairs/s | vs plain vLLM | prompt tokens/s | % of floor | "
             "% of computed floor | prefix hits a pair | peak GPU memory | peak host memory | engine start |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, data in report["runs"].items():
        lines += render_rows(name, data, report)
    lines.append("")
    for name, data in report["runs"].items():
        lines += render_comparisons(name, data)
    for system, r in report["systems"].items():
        if r.get("failed") and r.get("stderr_tail"):
            lines += ["", f"{report['labels'][system]} failed ({r['reason']}); log tail:", "", "```", r["stderr_tail"],
                      "```"]
    lines += ["", f"Total wall time {report['total_wall_seconds']:.0f} s.", ""]
    return "\n".join(lines)


def build_report(args: argparse.Namespace, argv: list[str], model_dir: Path, config_path: Path,
                 data: dict[str, dict[str, Any]], results: dict[str, dict[str, Any]], started: float) -> dict[str, Any]:
    floor = compute_floor(model_dir, args.peak_tflops)
    report: dict[str, Any] = {
        "command": shlex.join(["python", "scripts/bench.py", *argv]), "title": args.title,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"), "gpu": lib.gpu_name(), "model": str(model_dir),
        "model_label": f"random-weight Qwen3-Reranker {args.shape} shape" if args.shape else model_dir.name,
        "versions": {**lib.library_versions(),  # what a system's process imported wins
                     **next((r["versions"] for r in results.values() if r.get("versions")), {})},
        "settings": {"dtype": args.dtype, "max_model_len": args.max_model_len, "engine": args.engine_json,
                     "run": args.run_json, "chunk_size": args.chunk_size or None, "fp8_engine": args.fp8_engine_json,
                     "fp8_dtype": args.fp8_dtype, "hf_batch": args.hf_batch, "hf_max_pairs": args.hf_max_pairs or None,
                     "warmup_pairs": WARMUP_PAIRS},
        "floor": floor, "datasets": data, "systems_run": args.system_list, "labels": labels(args, results),
        "system_datasets": json.loads(config_path.read_text())["systems"],
        "systems": results, "agreement_limit": AGREEMENT_LIMIT,
        "runs": {name: dataset_rows(name, stats, floor, results) for name, stats in data.items()},
    }
    report["problems"] = problems_of(results, report["runs"])
    report["total_wall_seconds"] = time.perf_counter() - started
    return report


def main(argv: list[str]) -> int:
    started = time.perf_counter()
    args = parse_arguments(argv)
    lib.setdefault_environment()
    work = Path(args.work).resolve()
    model_dir = Path(args.model).resolve() if args.model else lib.ensure_model(work, args.shape, args.device)
    data = {dataset_name(d, q): prepare_dataset(work, model_dir, d, q, args.seed, args) for d, q in args.datasets}
    for name, d in data.items():
        print(f"data {name}: {d['pairs']:,} pairs, {d['mean_prompt_tokens']:.1f} prompt tokens a pair (max "
              f"{d['max_prompt_tokens']}), {d['shortened_documents']} passages shortened; {d['path']}", flush=True)
    docs = args.datasets[0][0]
    warmup = prepare_dataset(work, model_dir, docs, math.ceil(WARMUP_PAIRS / docs), args.seed + 1, args, WARMUP_PAIRS)
    config_path = write_config(args, work, model_dir, data, warmup)
    if args.prepare_only:
        print(f"prepared {model_dir} and the data in {work / 'data'}; --prepare-only: no system run")
        return 0
    out_json = Path(args.out_json) if args.out_json else work / "bench.json"
    out_json.parent.mkdir(parents=True, exist_ok=True)

    def save(results: dict[str, dict[str, Any]]) -> None:  # after every system: a run cut short keeps what it measured
        out_json.write_text(json.dumps({"partial": True, "datasets": data, "systems": results}, indent=1, default=str))

    results = run_systems(args, config_path, work, started, save)
    report = build_report(args, argv, model_dir, config_path, data, results, started)
    markdown = render_markdown(report)
    print("\n" + markdown)
    out_md = Path(args.out_md)
    out_md.parent.mkdir(parents=True, exist_ok=True)
    with out_md.open("a") as handle:
        handle.write(markdown + "\n")
    out_json.write_text(json.dumps(report, indent=1, default=str))
    print(f"appended to {out_md}; everything in {out_json}")
    for problem in report["problems"]:
        print(f"ERROR: {problem}", file=sys.stderr)
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
