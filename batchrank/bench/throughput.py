"""Reranking throughput of batchrank against what a user would write instead, on the same synthetic MS MARCO-shaped
pairs and the same model (issues 7, 13 and 21). The systems (batchrank_system.py and plain_systems.py):

  batchrank  run_job with its defaults (or --run-json / --engine-json settings)
  fp8        batchrank with model.engine.quantization fp8; its drift from batchrank's scores is reported
  vllm       plain vLLM: the model card's prompt texts, vLLM's defaults; each dataset as one llm.classify call and
             again in calls of each --vllm-calls size: the other systems' ratio is against the fastest, with the
             one-call figure beside it
  hf         plain transformers with SDPA, padded batches sorted by length

Each system runs in its own subprocess, one after another, with a timeout, and scores every dataset (--datasets
DOCS_PER_QUERY:QUERIES,...) with one engine start. A failed or timed-out system is reported in the table; the others
still run. Per dataset: pairs/s, prompt tokens/s, % of the compute floor (all prompt tokens) and of the computed
floor (less the prefix-cache hits), prefix-cache hits a pair, peak GPU and host memory, engine start, ratio to plain
vLLM at its best and at one call. The section is appended to --out-md; everything goes to --out-json (rewritten
after every system).

usage (repo root; on the GPU machine with PYTHONPATH=/tmp/site:. and no network):
  python -m batchrank.bench.throughput --shape 0.6b --datasets 100:1200 --systems vllm --work /tmp/bench
  python -m batchrank.bench.throughput --shape 0.6b --datasets 100:3000 --systems batchrank \\
      --vllm-reference anchor-06.json
  python -m batchrank.bench.throughput --shape 4b --datasets 100:250 --systems vllm,batchrank,fp8 \\
      --run-json '{"engines_per_gpu": 1}'
  python -m batchrank.bench.throughput --shape tiny --datasets 8:4 --dtype float32 --max-model-len 512   # CPU
Exit status: 0 when every system ran on every dataset and batchrank agrees with plain vLLM, 1 otherwise, 2 for a
bad option.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from batchrank.bench.environment import gpu_name, has_gpu, library_versions, setdefault_environment
from batchrank.bench.models import compute_floor
from batchrank.bench.options import add_model_options, default_device_and_dtype, json_object
from batchrank.bench.synthetic import MS_MARCO_WORDS, parse_doc_words
from batchrank.bench.system_runner import run_systems
from batchrank.bench.systems import SYSTEMS
from batchrank.bench.throughput_data import WARMUP_PAIRS, dataset_name, parse_datasets, prepare_all
from batchrank.bench.throughput_report import AGREEMENT_LIMIT, dataset_rows, labels, problems_of, render_markdown
from batchrank.bench.vllm_reference import UnusableReference, load_reference, reference_rows

DEFAULT_VLLM_CALLS = "5000,20000,100000"


def parse_call_sizes(text: str) -> list[int]:
    """SIZE,SIZE,... prompts per llm.classify call, or 'none' (an argparse type)."""
    if text.strip() == "none":
        return []
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items or not all(item.isdigit() and int(item) > 0 for item in items):
        raise argparse.ArgumentTypeError(f"{text!r}: expected prompts per call, e.g. 5000,20000, or 'none'")
    return sorted({int(item) for item in items})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m batchrank.bench.throughput", description=__doc__.splitlines()[0])
    add_model_options(parser, "model, data, per-system logs and scores")
    parser.add_argument("--datasets", type=parse_datasets, default=parse_datasets("100:200"),
                        help="DOCS_PER_QUERY:QUERIES,... (default 100:200); each system scores each one")
    parser.add_argument("--doc-words", type=parse_doc_words, default=MS_MARCO_WORDS, metavar="MEDIAN:MAX",
                        help="passage words: log-normal around MEDIAN, at most MAX (default 52:400, MS MARCO-like)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--systems", default="batchrank,vllm,hf", help=f"comma-separated, of {', '.join(SYSTEMS)}")
    parser.add_argument("--vllm-calls", type=parse_call_sizes, default=parse_call_sizes(DEFAULT_VLLM_CALLS),
                        help="plain vLLM scores each dataset as one call, then in calls of each of these sizes "
                        f"(those below the dataset's pairs; default {DEFAULT_VLLM_CALLS}; 'none': one call only)")
    parser.add_argument("--vllm-reference", default=None, metavar="REPORT.json",
                        help="an earlier run's --out-json whose plain vLLM rows anchor the datasets this run does "
                        "not score with plain vLLM (same candidates a query, seed, words, dtype, max_model_len, shape)")
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
    return parser


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """The options, checked (a bad one exits 2 with argparse's message naming it)."""
    parser = _parser()
    args = parser.parse_args(argv)
    default_device_and_dtype(args, has_gpu())
    args.system_list = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(args.system_list) - set(SYSTEMS))
    if unknown or not args.system_list:
        parser.error(f"--systems: unknown {unknown}; choose from {', '.join(SYSTEMS)}")
    if args.fp8_datasets and not set(args.fp8_datasets) <= set(args.datasets):
        parser.error("--fp8-datasets: each must be one of --datasets")
    args.reference = None
    if args.vllm_reference:
        try:
            args.reference = load_reference(args.vllm_reference)
        except UnusableReference as error:
            parser.error(str(error))
    return args


def write_config(args: argparse.Namespace, work: Path, model_dir: Path, data: dict[str, dict[str, Any]],
                 warmup: dict[str, Any]) -> Path:
    """WORK/bench-config.json: what every system's process reads."""
    fp8 = [dataset_name(*d) for d in args.fp8_datasets] if args.fp8_datasets else list(data)
    config = {
        "model": str(model_dir), "work": str(work), "dtype": args.dtype, "max_model_len": args.max_model_len,
        "engine": args.engine_json, "run": args.run_json, "chunk_size": args.chunk_size,
        "fp8_engine": args.fp8_engine_json, "fp8_dtype": args.fp8_dtype, "hf_batch": args.hf_batch,
        "hf_max_pairs": args.hf_max_pairs, "vllm_calls": args.vllm_calls, "warmup": warmup["path"],
        "warmup_pairs": warmup["pairs"], "datasets": {name: stats["path"] for name, stats in data.items()},
        "systems": {s: fp8 if s == "fp8" else list(data) for s in args.system_list},
    }
    path = work / "bench-config.json"
    path.write_text(json.dumps(config, indent=1))
    return path


# ---------------------------------------------------------------------------------------------------------------
# The report


def anchors(args: argparse.Namespace, data: dict[str, dict[str, Any]], floor: dict[str, Any], model_dir: Path
            ) -> dict[str, dict[str, dict[str, Any]]]:
    """--vllm-reference's plain vLLM rows for each dataset this run does not score with plain vLLM; UnusableReference
    naming why when the reference matches none of them."""
    if args.reference is None or "vllm" in args.system_list:
        return {}
    settings = {"dtype": args.dtype, "max_model_len": args.max_model_len}
    found, reasons = {}, []
    for name, stats in data.items():
        rows, reason = reference_rows(args.reference, stats, settings, floor, str(model_dir))
        if rows:
            found[name] = rows
        else:
            reasons.append(f"{name}: {reason}")
    if not found:
        raise UnusableReference(f"--vllm-reference {args.vllm_reference}: no dataset of it was made like this run's "
                             f"({'; '.join(reasons)})")
    return found


def build_report(args: argparse.Namespace, argv: list[str], model_dir: Path, config_path: Path,
                 data: dict[str, dict[str, Any]], results: dict[str, dict[str, Any]], started: float,
                 floor: dict[str, Any], reference: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Everything measured, with the settings, floors and ratios (what --out-json holds)."""
    expected = json.loads(config_path.read_text())["systems"]
    runs = {name: dataset_rows(name, stats, floor, results, expected, reference.get(name))
            for name, stats in data.items()}
    report: dict[str, Any] = {
        "command": shlex.join(["python", "-m", "batchrank.bench.throughput", *argv]), "title": args.title,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"), "gpu": gpu_name(), "model": str(model_dir),
        "model_label": f"random-weight Qwen3-Reranker {args.shape} shape" if args.shape else model_dir.name,
        "versions": {**library_versions(),  # what a system's process imported wins
                     **next((r["versions"] for r in results.values() if r.get("versions")), {})},
        "settings": {"dtype": args.dtype, "max_model_len": args.max_model_len, "engine": args.engine_json,
                     "run": args.run_json, "chunk_size": args.chunk_size or None, "fp8_engine": args.fp8_engine_json,
                     "fp8_dtype": args.fp8_dtype, "hf_batch": args.hf_batch, "hf_max_pairs": args.hf_max_pairs or None,
                     "warmup_pairs": WARMUP_PAIRS, "vllm_calls": args.vllm_calls,
                     "vllm_reference": args.vllm_reference},
        "floor": floor, "datasets": data, "systems_run": args.system_list, "system_datasets": expected,
        "labels": labels(args.hf_batch, results, runs), "systems": results, "agreement_limit": AGREEMENT_LIMIT,
        "runs": runs,
    }
    report["problems"] = problems_of(results, runs)
    report["total_wall_seconds"] = time.perf_counter() - started
    return report


def main(argv: list[str]) -> int:
    """Prepare the model and data, run the systems, print and write the report; the exit status."""
    started = time.perf_counter()
    args = parse_arguments(argv)
    setdefault_environment()
    work, model_dir, data, warmup = prepare_all(args)
    config_path = write_config(args, work, model_dir, data, warmup)
    floor = compute_floor(model_dir, args.peak_tflops)
    try:
        reference = anchors(args, data, floor, model_dir)  # checked before any system runs
    except UnusableReference as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.prepare_only:
        print(f"prepared {model_dir} and the data in {work / 'data'}; --prepare-only: no system run")
        return 0
    out_json = Path(args.out_json) if args.out_json else work / "bench.json"
    out_json.parent.mkdir(parents=True, exist_ok=True)

    def save(results: dict[str, dict[str, Any]]) -> None:  # after every system: a run cut short keeps what it measured
        out_json.write_text(json.dumps({"partial": True, "datasets": data, "systems": results}, indent=1, default=str))

    results = run_systems(args, config_path, work, started, save)
    report = build_report(args, argv, model_dir, config_path, data, results, started, floor, reference)
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
