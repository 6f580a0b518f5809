"""Does memory stay bounded whatever the documents' length? (issue 7: no OOM for any input)

Runs `batchrank run` twice with the same model and engine settings: on MS MARCO-length passages, then on passages
far longer than max_model_len (batchrank truncates the document side to fit, as it does for users). Peak host
memory (the resident set of the run's process tree) and peak GPU memory are sampled from outside while each runs;
with the engine's memory fixed by its settings (KV cache, step token budget), both peaks should be about equal.
Prints one table and appends it, with this command, to --out-md.

usage (repo root):
  python scripts/memory_run.py --model W/model-tiny --max-model-len 32768 --dtype float32         # CPU, ~5 min
  python scripts/memory_run.py --model W/model-0.6b --max-model-len 32768 --doc-words 12000:40000  # GPU
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import (  # noqa: E402
    REPO,
    MemorySampler,
    child_environment,
    gpu_name,
    parse_doc_words,
    synthetic_pairs,
    write_pairs,
)


def run_job(name: str, pairs: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    out = work / f"out-{name}"
    job = {
        "input": {"path": str(pairs)},
        "model": {"path": args.model, "dtype": args.dtype, "max_model_len": args.max_model_len,
                  "engine": json.loads(args.engine_json)},
        "run": {"chunk_size": args.chunk_size},
        "output": {"path": str(out)},
    }
    job_path = work / f"job-{name}.yaml"
    job_path.write_text(yaml.safe_dump(job))
    log = work / f"log-{name}.txt"
    command = [sys.executable, "-m", "batchrank.cli", "run", str(job_path), "--overwrite", "--preview", "0"]
    started = time.perf_counter()
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO, env=child_environment())
        sampler = MemorySampler(process.pid)
        sampler.start()
        returncode = process.wait()
    sampler.stop()
    result: dict[str, Any] = {"name": name, "returncode": returncode, "seconds": round(time.perf_counter() - started, 1),
                              "peak_host_mib": sampler.peak_host_mib, "peak_gpu_mib": sampler.peak_gpu_mib,
                              "log": str(log)}
    if returncode != 0:
        result["tail"] = log.read_text(errors="replace")[-2000:]
        return result
    info = json.loads((out / "run.json").read_text())
    result.update(pairs=info["pairs"], prompt_tokens=info["prompt_tokens"], truncated_pairs=info["truncated_pairs"])
    return result


def render(args: argparse.Namespace, results: list[dict[str, Any]], command: str) -> str:
    lines = [f"## Memory with documents up to max_model_len {args.max_model_len:,}: {gpu_name()} "
             f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "", "```", command, "```", "",
             "| documents | pairs | prompt tokens a pair | truncated to fit | peak host memory | peak GPU memory | wall |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        gpu = "n/a" if r["peak_gpu_mib"] is None else f"{r['peak_gpu_mib'] / 1024:.1f} GiB"
        host = "n/a" if r["peak_host_mib"] is None else f"{r['peak_host_mib'] / 1024:.2f} GiB"
        if r["returncode"] != 0:
            lines.append(f"| {r['name']} | FAILED (exit {r['returncode']}) | | | {host} | {gpu} | {r['seconds']} s |")
            continue
        lines.append(f"| {r['name']} | {r['pairs']:,} | {r['prompt_tokens'] / r['pairs']:,.0f} | "
                     f"{r['truncated_pairs']:,} | {host} | {gpu} | {r['seconds']} s |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--max-model-len", type=int, default=32768)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--doc-words", type=parse_doc_words, default=(12000, 40000),
                        help="MEDIAN:MAX words of the long passages (the short ones are MS MARCO's 52:400)")
    parser.add_argument("--queries", type=int, default=2)
    parser.add_argument("--docs-per-query", type=int, default=10)
    parser.add_argument("--chunk-size", type=int, default=5)
    parser.add_argument("--engine-json", default="{}", help="model.engine for both runs")
    parser.add_argument("--work", default="/tmp/batchrank-memory")
    parser.add_argument("--out-md", default=None)
    args = parser.parse_args()
    args.model = str(Path(args.model).resolve())
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    command = "python scripts/memory_run.py " + shlex.join(sys.argv[1:])

    results = []
    for name, doc_words, seed in (("MS MARCO-length", (52, 400), 1), ("longer than max_model_len", args.doc_words, 2)):
        pairs = write_pairs(synthetic_pairs(args.queries, args.docs_per_query, seed, doc_words), work / f"{seed}.parquet")
        results.append(run_job(name, pairs, args, work))
        print(json.dumps(results[-1]), flush=True)
    table = render(args, results, command)
    print(table)
    if args.out_md:
        with open(args.out_md, "a") as handle:
            handle.write("\n" + table)
    sys.exit(0 if all(r["returncode"] == 0 for r in results) else 1)


if __name__ == "__main__":
    main()
