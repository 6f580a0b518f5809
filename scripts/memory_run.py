"""Does memory stay bounded whatever the documents' length? (issue 7: no OOM for any input; issue 13 item 6)

Runs `batchrank run` twice with the same model and engine settings: on MS MARCO-length passages, then on passages
longer than max_model_len (batchrank truncates the document side to fit, as it does for users). Peak host memory
(the resident set of the run's process tree) and peak GPU memory are sampled from outside while each runs; with
the engine's memory fixed by its settings (KV cache, step token budget), both peaks should be about equal.

The long passages are sized in tokens of the model's own tokenizer: 1.25 to 3 times max_model_len (the synthetic
words tokenize compactly, about one token a word, so a length in words alone fell short of max_model_len on the
GPU). The script fails unless every long passage was cut and no short one was: a run that cut nothing measured
nothing. Prints one table and appends it, with this command, to --out-md.

usage (repo root):
  python scripts/memory_run.py --model W/model-tiny --max-model-len 32768 --dtype float32         # CPU, ~5 min
  python scripts/memory_run.py --model W/model-0.6b --max-model-len 32768                         # GPU
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import benchlib as lib
import yaml

LONG_TOKENS = (1.25, 2.0, 3.0)  # shortest, median, longest long passage, in units of max_model_len


def long_doc_words(args: argparse.Namespace) -> tuple[tuple[int, int], int]:
    """(median, longest) and shortest words of the long passages: --doc-words, or sized in tokens."""
    if args.doc_words:
        return args.doc_words, 8
    per_word = lib.tokens_per_word(lib.token_counter(args.model))
    shortest, median, longest = (int(f * args.max_model_len / per_word) + 1 for f in LONG_TOKENS)
    print(f"long passages: {per_word:.2f} tokens a word -> {shortest:,} to {longest:,} words (median {median:,})",
          flush=True)
    return (median, longest), shortest


def run_batchrank(name: str, pairs: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    out = work / f"out-{name.split()[0]}"
    job = {"input": {"path": str(pairs)}, "output": {"path": str(out)},
           "model": {"path": args.model, "dtype": args.dtype, "max_model_len": args.max_model_len,
                     "engine": json.loads(args.engine_json)},
           "run": {"chunk_size": args.chunk_size, **json.loads(args.run_json)}}
    job_path = work / f"job-{name.split()[0]}.yaml"
    job_path.write_text(yaml.safe_dump(job))
    command = [sys.executable, "-m", "batchrank.cli", "run", str(job_path), "--overwrite", "--preview", "0"]
    run = lib.run_measured(command, work / f"log-{name.split()[0]}.txt", args.run_timeout)
    result: dict[str, Any] = {"name": name, "returncode": run.returncode, "seconds": round(run.seconds, 1),
                              "peak_host_mib": run.peak_host_mib, "peak_gpu_mib": run.peak_gpu_mib, "log": str(run.log)}
    if run.returncode != 0:
        result["tail"] = run.tail(40)
        return result
    info = json.loads((out / "run.json").read_text())
    result.update(pairs=info["pairs"], prompt_tokens=info["prompt_tokens"], truncated_pairs=info["truncated_pairs"],
                  executor=info["execution"]["executor"], pairs_per_second=info.get("pairs_per_second_this_run"))
    return result


def render(args: argparse.Namespace, results: list[dict[str, Any]], command: str) -> str:
    lines = [f"## Memory with documents longer than max_model_len {args.max_model_len:,}: {lib.gpu_name()} "
             f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "", "```", command, "```", "",
             "| documents | pairs | prompt tokens a pair | truncated to fit | peak host memory | peak GPU memory "
             "| wall | pairs/s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        gpu, host = lib.fmt_gib(r["peak_gpu_mib"]), lib.fmt_gib(r["peak_host_mib"], 2)
        if r["returncode"] != 0:
            lines.append(f"| {r['name']} | FAILED (exit {r['returncode']}) | | | {host} | {gpu} | {r['seconds']} s | |")
            continue
        lines.append(f"| {r['name']} | {r['pairs']:,} | {r['prompt_tokens'] / r['pairs']:,.0f} | "
                     f"{r['truncated_pairs']:,} | {host} | {gpu} | {r['seconds']} s | {r.get('pairs_per_second') or ''} |")
    return "\n".join(lines) + "\n"


def problems(results: list[dict[str, Any]]) -> list[str]:
    found = [f"{r['name']}: exit code {r['returncode']}:\n{r.get('tail', '')}" for r in results if r["returncode"] != 0]
    if found:
        return found
    by_name = {r["name"]: r for r in results}
    short, long = by_name.get("MS MARCO-length"), by_name.get("longer than max_model_len")
    if short and short["truncated_pairs"]:
        found.append(f"{short['truncated_pairs']} MS MARCO-length passages were cut: max_model_len is too small")
    if long and long["truncated_pairs"] != long["pairs"]:
        found.append(f"only {long['truncated_pairs']} of {long['pairs']} long passages were cut to fit: the run "
                     "did not test documents longer than max_model_len")
    return found


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--max-model-len", type=int, default=32768)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--doc-words", type=lib.parse_doc_words, default=None,
                        help="MEDIAN:MAX words of the long passages (default: 1.25-3x max_model_len in tokens)")
    parser.add_argument("--queries", type=int, default=2)
    parser.add_argument("--docs-per-query", type=int, default=10)
    parser.add_argument("--chunk-size", type=int, default=5)
    parser.add_argument("--engine-json", default="{}", help="model.engine for both runs")
    parser.add_argument("--run-json", default='{"executor": "local"}',
                        help="run settings for both runs (default: one local engine, whose memory is the question)")
    parser.add_argument("--run-timeout", type=float, default=900.0, help="seconds per run before it is killed")
    parser.add_argument("--work", default="/tmp/batchrank-memory")
    parser.add_argument("--out-md", default=None)
    parser.add_argument("--out-json", default=None)
    parser.add_argument("--runs", default="short,long", help="short (MS MARCO-length), long, or both")
    args = parser.parse_args()
    args.model = str(Path(args.model).resolve())
    return args


def main() -> None:
    args = parse_arguments()
    lib.setdefault_environment()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    command = "python scripts/memory_run.py " + shlex.join(sys.argv[1:])
    long_words, shortest = long_doc_words(args)
    results = []
    runs = {"short": ("MS MARCO-length", lib.MS_MARCO_WORDS, 8, 1),
            "long": ("longer than max_model_len", long_words, shortest, 2)}
    for name, doc_words, least, seed in (runs[run] for run in args.runs.split(",")):
        rows = lib.synthetic_pairs(args.queries, args.docs_per_query, seed, doc_words, shortest=least)
        results.append(run_batchrank(name, lib.write_pairs(rows, work / f"pairs-{seed}.parquet"), args, work))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "tail"}), flush=True)
    table = render(args, results, command)
    found = problems(results)
    table += "".join(f"\nFAILED: {problem.splitlines()[0]}\n" for problem in found)
    print(table)
    if args.out_md:
        with open(args.out_md, "a") as handle:
            handle.write("\n" + table)
    Path(args.out_json or work / "memory.json").write_text(json.dumps(results, indent=1))
    for problem in found:
        print(f"ERROR: {problem}", file=sys.stderr)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
