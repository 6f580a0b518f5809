"""Validate and plan at scale (issue 14): time and peak memory of `batchrank validate` and of `batchrank run` up to
its plan (OUTPUT/job.json written), on synthetic pairs generated batch by batch, never held in memory.

Pairs: 1000 candidates per query (--per-query), short texts. `grouped`: one file, queries in order. `scattered`:
--files files (or as many as --rows-per-file makes); every block of 1000 queries is dealt round-robin over its rows
(query q's candidates are 1000 rows apart) and each block is split over every file, so each query's rows lie in all
files. Row groups: one per block and file, or --row-group-rows rows each (issue 24's layout: files of 5M rows in row
groups of 500,000, `--rows-per-file 5M --row-group-rows 500k`).

The README's bound (issue 24): each step's peak against its base, the peak of the same step on a sample of 20,000
pairs in as many files (the interpreter, libraries and thread pools), plus run.plan_read_mib, plus for the plan
run.staging_sort_mib, plus the per-query facts (3 x (100 bytes + the query's text) per query). Both commands run as
subprocesses with the fake scorer (tests/fake_scorer.py: no model); the peak is the resident set of the process
tree, sampled every 50 ms. Not a timed test.

usage (repo root):
  python -m batchrank.bench.scale_bench --sizes 2M,10M,40M --order grouped,scattered --work /tmp/scale
  python -m batchrank.bench.scale_bench --sizes 1B --order grouped --work /tmp/scale --only plan
  python -m batchrank.bench.scale_bench --sizes 40M,200M --order scattered --rows-per-file 5M --row-group-rows 500k
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from batchrank.bench.environment import REPO, child_environment
from batchrank.bench.memory import process_tree_cpu_seconds, process_tree_rss_mib

FAKE_BATCHRANK = [sys.executable, str(REPO / "tests" / "fake_scorer.py")]
WORDS = np.array("water boils at one hundred degrees sea level vaccine immune system python list sort method "
                 "photosynthesis plants light energy sugar tower paris iron bread flour yeast oven king".split())
BLOCK_QUERIES = 1000  # a scattered block: this many queries interleaved row by row
SAMPLE_PAIRS = 20_000  # the sample whose peak is a step's base
DEFAULT_PLAN_READ_MIB, DEFAULT_STAGING_MIB = 256, 1024  # batchrank's defaults
QUERY_CHARS = 20  # "what is <word> <number>"
SCHEMA = pa.schema([("query_id", pa.string()), ("query", pa.string()), ("doc_id", pa.string()),
                    ("document", pa.string())])


def parse_count(text: str) -> int:
    scale = {"k": 10**3, "M": 10**6, "B": 10**9}
    return int(float(text[:-1]) * scale[text[-1]]) if text[-1] in scale else int(text)


def pairs_table(queries: np.ndarray, candidates: np.ndarray) -> pa.Table:
    """Rows for (query number, candidate number) pairs: ids and short texts built column-wise by Arrow."""
    q = pa.array(queries).cast(pa.string())
    c = pa.array(candidates).cast(pa.string())
    doc_numbers = pa.array((queries * 7919 + candidates * 104729) % 10_000_000).cast(pa.string())
    word = pa.array(WORDS[queries % len(WORDS)])
    other = pa.array(WORDS[(queries + candidates) % len(WORDS)])
    return pa.Table.from_arrays([
        pc.binary_join_element_wise("q", q, ""),
        pc.binary_join_element_wise("what is", word, q, " "),
        pc.binary_join_element_wise("p", doc_numbers, ""),
        pc.binary_join_element_wise("passage", doc_numbers, "on", word, "and", other, c, " "),
    ], schema=SCHEMA)


class RowGroupWriter:
    """A Parquet writer that writes row groups of exactly `group_rows` rows (the last one shorter), whatever the
    size of the tables it is given (None: one row group per table given)."""

    def __init__(self, path: Path, group_rows: int | None):
        self.writer = pq.ParquetWriter(path, SCHEMA, compression="zstd")
        self.group_rows, self.held, self.held_rows = group_rows, [], 0

    def write(self, table: pa.Table) -> None:
        if self.group_rows is None:
            self.writer.write_table(table)
            return
        self.held.append(table)
        self.held_rows += table.num_rows
        if self.held_rows >= self.group_rows:
            whole = pa.concat_tables(self.held).combine_chunks()
            cut = self.held_rows - self.held_rows % self.group_rows
            self.writer.write_table(whole.slice(0, cut), row_group_size=self.group_rows)
            self.held, self.held_rows = [whole.slice(cut)], self.held_rows - cut

    def close(self) -> None:
        if self.held_rows:
            self.writer.write_table(pa.concat_tables(self.held), row_group_size=self.group_rows)
        self.writer.close()


def generate(order: str, pairs: int, args: argparse.Namespace, directory: Path) -> float:
    """Write the pairs under `directory` (if not there yet); returns the seconds it took (0 when reused)."""
    done = directory / "_COMPLETE"
    if done.exists():
        return 0.0
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    started = time.perf_counter()
    count = 1 if order == "grouped" else scattered_files(pairs, args)
    writers = [RowGroupWriter(directory / f"part-{i:02d}.parquet", args.row_group_rows) for i in range(count)]
    per_query = args.per_query
    queries = pairs // per_query
    for block in range(0, queries, BLOCK_QUERIES):
        size = min(BLOCK_QUERIES, queries - block)
        rows = np.arange(size * per_query, dtype=np.int64)
        if order == "grouped":
            table = pairs_table(block + rows // per_query, rows % per_query)
            writers[0].write(table)
            continue
        table = pairs_table(block + rows % size, rows // size)  # query q's rows are `size` rows apart
        for i, piece in enumerate(np.array_split(np.arange(table.num_rows), count)):
            writers[i].write(table.slice(int(piece[0]), len(piece)))
    for writer in writers:
        writer.close()
    done.write_text(str(pairs))
    return time.perf_counter() - started


def scattered_files(pairs: int, args: argparse.Namespace) -> int:
    return -(-pairs // args.rows_per_file) if args.rows_per_file else args.files


def measure(command: list[str], stop_when: Path | None = None) -> dict[str, Any]:
    """Run the command; its wall time, CPU time and the peak resident set of its process tree, sampled every 50 ms
    for 10 s, then every 250 ms (the sampling's own CPU stays small on a long run). With `stop_when`, the process
    is killed as soon as that file exists (the time is then the time until it appeared)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=child_environment(), cwd=REPO)
    peak, cpu = 0.0, 0.0
    while process.poll() is None:
        peak = max(peak, process_tree_rss_mib(process.pid) or 0.0)
        cpu = process_tree_cpu_seconds(process.pid) or cpu
        if stop_when is not None and stop_when.exists():
            seconds = time.perf_counter() - started
            process.kill()
            process.communicate()
            return {"seconds": seconds, "cpu": cpu, "peak_gib": peak / 1024, "returncode": 0, "output": ""}
        time.sleep(0.05 if time.perf_counter() - started < 10 else 0.25)
    output = process.communicate()[0]
    return {"seconds": time.perf_counter() - started, "cpu": cpu, "peak_gib": peak / 1024,
            "returncode": process.returncode, "output": output}


def write_job(work: Path, name: str, source: Path, args: argparse.Namespace) -> Path:
    run = {"executor": "local", "chunk_size": args.chunk_size}
    if args.staging_mib:  # a setting the code before issue 14 did not have
        run["staging_sort_mib"] = args.staging_mib
    if args.plan_read_mib:  # nor this one, before issue 24
        run["plan_read_mib"] = args.plan_read_mib
    job = {"input": {"path": str(source)}, "model": {"path": "/nonexistent/model"}, "run": run,
           "output": {"path": str(work / f"out-{name}")}}
    path = work / f"job-{name}.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def bench_one(order: str, pairs: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    layout = f"-{args.rows_per_file}x{args.row_group_rows}" if args.rows_per_file or args.row_group_rows else ""
    name = f"{order}-{pairs}{layout}"
    source = Path(args.work) / f"pairs-{name}"
    generated = generate(order, pairs, args, source)
    base = sample_peaks(order, pairs, args)
    if generated:
        size = sum(p.stat().st_size for p in source.glob("*.parquet")) / 2**30
        print(f"generated {pairs:,} {order} pairs in {generated:.0f} s ({size:.1f} GiB)", flush=True)
    job = write_job(Path(args.work), name, source, args)
    results = []
    if args.only in ("both", "validate"):
        results.append({"step": "validate", **measure([*FAKE_BATCHRANK, "validate", str(job)])})
    if args.only in ("both", "plan"):
        out = Path(args.work) / f"out-{name}"
        shutil.rmtree(out, ignore_errors=True)
        command = [*FAKE_BATCHRANK, "run", str(job), "--overwrite", "--preview", "0"]
        results.append({"step": "plan", **measure(command, stop_when=out / "job.json")})
        shutil.rmtree(out, ignore_errors=True)
    for result in results:
        result.update(load=os.getloadavg()[0], order=order, pairs=pairs,
                      files=1 if order == "grouped" else scattered_files(pairs, args), base_gib=base[result["step"]])
        result["bound_gib"] = bound_gib(result, pairs, args)
        if result["returncode"] != 0:
            print(result["output"][-3000:], file=sys.stderr)
    if args.delete_after:
        shutil.rmtree(source, ignore_errors=True)
    return results


def sample_peaks(order: str, pairs: int, args: argparse.Namespace) -> dict[str, float]:
    """The peak of each step on 20,000 pairs in as many files as the input (the base of the README's bound)."""
    files = 1 if order == "grouped" else scattered_files(pairs, args)
    sample_args = argparse.Namespace(**{**vars(args), "rows_per_file": None, "row_group_rows": None, "files": files})
    source = Path(args.work) / f"sample-{order}-{files}"
    generate(order, SAMPLE_PAIRS, sample_args, source)
    job = write_job(Path(args.work), f"sample-{order}-{files}", source, args)
    out = Path(args.work) / f"out-sample-{order}-{files}"
    shutil.rmtree(out, ignore_errors=True)
    validate = measure([*FAKE_BATCHRANK, "validate", str(job)])
    plan = measure([*FAKE_BATCHRANK, "run", str(job), "--overwrite", "--preview", "0"], stop_when=out / "job.json")
    shutil.rmtree(out, ignore_errors=True)
    return {"validate": validate["peak_gib"], "plan": plan["peak_gib"]}


def bound_gib(result: dict[str, Any], pairs: int, args: argparse.Namespace) -> float:
    """base + run.plan_read_mib (+ run.staging_sort_mib for the plan) + the per-query facts."""
    settings_mib = args.plan_read_mib or DEFAULT_PLAN_READ_MIB
    if result["step"] == "plan":
        settings_mib += args.staging_mib or DEFAULT_STAGING_MIB
    facts = pairs // args.per_query * 3 * (100 + QUERY_CHARS)
    return result["base_gib"] + settings_mib / 1024 + facts / 2**30


def print_table(results: list[dict[str, Any]]) -> None:
    print("\n| pairs | order | files | step | wall s | pairs/s | CPU s | peak RSS (GiB) | base | bound | exit | load |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        rate = r["pairs"] / r["seconds"] / 1e6
        print(f"| {r['pairs']:,} | {r['order']} | {r['files']} | {r['step']} | {r['seconds']:.1f} | {rate:.2f}M | "
              f"{r['cpu']:.1f} | {r['peak_gib']:.2f} | {r['base_gib']:.2f} | {r['bound_gib']:.2f} | "
              f"{r['returncode']} | {r['load']:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2M,10M", help="pairs, e.g. 2M,10M,40M,1B")
    parser.add_argument("--order", default="grouped,scattered")
    parser.add_argument("--files", type=int, default=8, help="files of a scattered input")
    parser.add_argument("--rows-per-file", type=parse_count, default=None,
                        help="rows of each file of a scattered input (instead of --files), e.g. 5M")
    parser.add_argument("--row-group-rows", type=parse_count, default=None,
                        help="rows per row group, e.g. 500k (default: one row group per 1000-query block and file)")
    parser.add_argument("--per-query", type=int, default=1000)
    parser.add_argument("--chunk-size", type=int, default=20_000)
    parser.add_argument("--staging-mib", type=int, default=None, help="run.staging_sort_mib (default: batchrank's)")
    parser.add_argument("--plan-read-mib", type=int, default=None, help="run.plan_read_mib (default: batchrank's)")
    parser.add_argument("--only", choices=("both", "validate", "plan"), default="both")
    parser.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "batchrank-scale"))
    parser.add_argument("--delete-after", action="store_true", help="remove each input once measured")
    args = parser.parse_args()
    Path(args.work).mkdir(parents=True, exist_ok=True)
    results = []
    for size in args.sizes.split(","):
        for order in args.order.split(","):
            results += bench_one(order, parse_count(size), args)
            print_table(results[-2:] if args.only == "both" else results[-1:])
    print_table(results)


if __name__ == "__main__":
    main()
