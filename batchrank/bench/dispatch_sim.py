"""The Ray executor's dispatch at cluster scale, simulated: real actors, real reads and part writes, a scorer of
fixed speed in place of the engine.

Each configuration is one `batchrank run` (run_job) with run.executor ray and N CPU actors ({num_cpus: 0.1}) whose
scorer sleeps pairs / RATE seconds a chunk, so a worker scores at most RATE pairs/s and the job at most N x RATE.
What the driver does per chunk (ray.wait, the result, the ledger, progress, handing out the next chunk) is timed by
execute.base.DispatchTiming and read back from run.json. Also printed: parts written per second and the input read
amplification (rows of the row groups a chunk's read touches, over the chunk's rows: what RowRangeReader decodes).

usage (repo root):
  python -m batchrank.bench.dispatch_sim [--workers 8 16] [--chunk-size 500 2000] [--pairs 1500000] [--rate 4000]
      [--row-group-rows N (default: the chunk size)] [--window 2] [--work DIR] [--json FILE]
  python -m batchrank.bench.dispatch_sim --chunk-size 2000 --read-cost 2000 20000 100000 1048576 [--pairs 200000]
  python -m batchrank.bench.dispatch_sim --ray-wait 16 128 256 512
--read-cost and --ray-wait print one JSON line a measurement (--json writes them too); --ray-wait starts a Ray
cluster of its own on this machine and stops it at its end.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from batchrank.bench.synthetic import synthetic_pairs
from batchrank.job import run_job
from batchrank.output.layout import OutputLayout
from batchrank.output.manifest import read_manifest
from batchrank.scoring.base import ChunkAtATimeScorer, EnginePlacement, ModelFacts, PreparedChunk
from batchrank.spec import JobSpec, parse_spec

DOCS_PER_QUERY = 100
SIMULATED_PAIRS = 1_500_000  # --pairs' default for a simulation
READ_COST_PAIRS = 200_000  # and for --read-cost


class FixedSpeedScorer(ChunkAtATimeScorer):
    """An engine that scores `rate` pairs per second, one chunk at a time, and needs no CPU while it does."""

    kind = "qwen3-yes-no"

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def prepare(self, pairs: pl.DataFrame) -> PreparedChunk:
        tokens = int(pairs.select(pl.col("query").str.len_bytes().sum() + pl.col("document").str.len_bytes().sum())
                     .item()) // 4
        return PreparedChunk(pairs.height, tokens, 0, pairs.height)

    def score(self, prepared: PreparedChunk) -> np.ndarray:
        time.sleep(prepared.payload / self.rate)
        return np.random.default_rng(prepared.payload).random(prepared.payload)

    def describe(self) -> dict[str, Any]:
        return {"kind": "fixed-speed", "pairs_per_second": self.rate}


class FixedSpeedFactory:
    """A ScorerFactory (scoring/base.py) without a model: every check passes, every scorer runs at `rate`."""

    def __init__(self, rate: float):
        self.rate = rate

    def inspect(self, spec: JobSpec) -> ModelFacts:
        return ModelFacts("qwen3-yes-no", {"kind": "fixed-speed"}, spec.model.max_model_len, "none", 0)

    def too_long_queries(self, spec: JobSpec, facts: ModelFacts, queries: list[str]) -> list[int]:
        return []

    def create(self, spec: JobSpec, placement: EnginePlacement) -> FixedSpeedScorer:
        return FixedSpeedScorer(self.rate)


def write_input(path: Path, pairs: int, row_group_rows: int) -> None:
    """MS MARCO-sized texts (a 6-word query, a 60-word passage), grouped by query."""
    row = np.arange(pairs)
    frame = pl.DataFrame({"query_id": row // DOCS_PER_QUERY, "doc_id": row}).with_columns(
        query=pl.format("what is the boiling point of water {}", pl.col("query_id")),
        document=pl.format("{} " + "water boils at one hundred degrees at sea level pressure " * 6, pl.col("doc_id")),
    )
    frame.select("query_id", "query", "doc_id", "document").write_parquet(path, row_group_size=row_group_rows)


def decoded_rows(input_path: Path, ranges: list[tuple[int, int]]) -> int:
    """Rows RowRangeReader decodes to read these (start, rows) ranges: every row group that overlaps one."""
    metadata = pq.ParquetFile(input_path).metadata
    bounds = np.cumsum([0, *(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))])
    decoded = 0
    for start, rows in ranges:
        first = np.searchsorted(bounds, start, side="right") - 1
        last = np.searchsorted(bounds, start + rows - 1, side="right") - 1
        decoded += int(bounds[last + 1] - bounds[first])
    return decoded


def read_amplification(input_path: Path, output: Path) -> float:
    """Rows decoded per row wanted over the job's chunks."""
    chunks = read_manifest(OutputLayout(output)).chunks
    return decoded_rows(input_path, [(c.start, c.num_rows) for c in chunks]) / sum(c.num_rows for c in chunks)


def read_cost(work: Path, chunk_size: int, groups: list[int], pairs: int = READ_COST_PAIRS) -> list[dict[str, Any]]:
    """What one chunk's read costs a worker (RowRangeReader, as ChunkReader uses it) with MS MARCO-shaped pairs
    (the throughput bench's synthetic ones) written with row groups of each size: ms, rows decoded, bytes on disk.
    Times reads of up to 20 chunks at random whole-chunk offsets."""
    from batchrank.io.parquet_files import RowRangeReader
    from batchrank.storage import StoragePath

    if pairs < 2 * chunk_size:
        raise ValueError(f"--read-cost: --pairs {pairs} must hold at least two chunks of {chunk_size}")
    frame = pl.DataFrame(synthetic_pairs(-(-pairs // DOCS_PER_QUERY), DOCS_PER_QUERY, seed=0)[:pairs])
    offsets = range(0, pairs - chunk_size, chunk_size)
    starts = random.Random(0).sample(offsets, min(20, len(offsets)))
    rows = []
    for group in groups:
        path = work / f"msmarco-shaped-{pairs}-{group}.parquet"
        frame.write_parquet(path, row_group_size=group)
        reader = RowRangeReader([StoragePath.of(path)])
        reader.read(0, chunk_size)  # the footer, read once per worker
        started = time.perf_counter()
        for start in starts:
            reader.read(start, chunk_size)
        per_chunk = (time.perf_counter() - started) / len(starts)
        rows.append({"chunk_size": chunk_size, "row_group_rows": group, "read_ms_per_chunk": round(1000 * per_chunk, 2),
                     "rows_decoded_per_chunk": decoded_rows(path, [(st, chunk_size) for st in starts]) // len(starts),
                     "bytes_per_pair_on_disk": round(path.stat().st_size / pairs, 1)})
    return rows


def ray_wait_cost(counts: list[int]) -> list[dict[str, Any]]:
    """The driver's ray.wait(num_returns=1) over this many chunks in flight (one of them finished): what a cluster
    of many workers adds to the dispatch of each chunk. One async actor holds every pending call, in a Ray cluster
    started here for this measurement (address "local": never one that other work on this machine uses)."""
    import asyncio

    import ray

    @ray.remote(num_cpus=0.01, max_concurrency=4096)
    class Sleeper:
        async def sleep(self, seconds: float) -> float:
            await asyncio.sleep(seconds)
            return seconds

    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    try:
        actor = Sleeper.remote()
        ray.get(actor.sleep.remote(0))
        rows = []
        for count in counts:
            pending = [actor.sleep.remote(3600) for _ in range(count - 1)]
            times = []
            for _ in range(200):
                ready = actor.sleep.remote(0)
                ray.get(ready)
                started = time.perf_counter()
                ray.wait([*pending, ready], num_returns=1)
                times.append(time.perf_counter() - started)
            rows.append({"in_flight": count, "ray_wait_ms": round(1000 * statistics.median(times), 3)})
            for reference in pending:
                ray.cancel(reference)
        return rows
    finally:
        ray.shutdown()


def simulate(work: Path, workers: int, chunk_size: int, pairs: int, rate: float, row_group_rows: int,
             window: int) -> dict[str, Any]:
    """One run_job on the Ray executor with `workers` fixed-speed actors; the driver's dispatch figures."""
    input_path = work / f"input-{pairs}-{row_group_rows}.parquet"
    if not input_path.exists():
        write_input(input_path, pairs, row_group_rows)
    output = work / f"out-{workers}w-{chunk_size}c-{row_group_rows}g"
    spec = parse_spec({
        "input": {"path": str(input_path)},
        "model": {"path": "/nonexistent/fixed-speed-model", "max_model_len": 512},
        "run": {"executor": "ray", "num_workers": workers, "worker_resources": {"num_cpus": 0.1, "num_gpus": 0},
                "chunk_size": chunk_size, "chunks_in_flight_per_worker": window},
        "output": {"path": str(output)},
    })
    started = time.perf_counter()
    result = run_job(spec, overwrite=True, scorer_factory=FixedSpeedFactory(rate))
    info = result.run_info
    dispatch = info["execution"]["dispatch"]
    ideal = workers * rate
    return {
        "workers": workers, "chunk_size": chunk_size, "chunks": dispatch["chunks"],
        "ideal_pairs_per_second": ideal, "pairs_per_second": info["pairs_per_second_this_run"],
        "of_ideal": round(info["pairs_per_second_this_run"] / ideal, 3),
        "parts_per_second": dispatch["chunks_per_second"], "driver_busy_ms_per_chunk": dispatch["busy_ms_per_chunk"],
        "driver_cpu_ms_per_chunk": dispatch["cpu_ms_per_chunk"],
        "driver_busy_share": round(dispatch["busy_seconds"] / max(dispatch["seconds"], 1e-9), 3),
        "row_group_rows": row_group_rows, "read_amplification": round(read_amplification(input_path, output), 2),
        "job_seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str]) -> None:
    """A simulation for each --workers x --chunk-size, or instead --read-cost or --ray-wait."""
    parser = argparse.ArgumentParser(prog="python -m batchrank.bench.dispatch_sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--chunk-size", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--pairs", type=int, help=f"pairs per run (whole queries of {DOCS_PER_QUERY}; default "
                        f"{SIMULATED_PAIRS:,}, with --read-cost {READ_COST_PAIRS:,})")
    parser.add_argument("--rate", type=float, default=4000.0, help="pairs/s of each worker's scorer")
    parser.add_argument("--row-group-rows", type=int, help="row group size of the input (default: the chunk size)")
    parser.add_argument("--window", type=int, default=2, help="run.chunks_in_flight_per_worker")
    parser.add_argument("--work", help="directory for the input and outputs (default: a temporary one)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--read-cost", type=int, nargs="*", metavar="ROW_GROUP_ROWS",
                        help="instead: time one chunk's read from inputs with these row group sizes "
                        "(none named: 2000 20000 100000 1048576)")
    parser.add_argument("--ray-wait", type=int, nargs="+", metavar="IN_FLIGHT",
                        help="instead: time the driver's ray.wait with this many chunks in flight")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="dispatch-sim-") as scratch:
        work = Path(args.work or scratch)
        work.mkdir(parents=True, exist_ok=True)
        if args.ray_wait:
            results = ray_wait_cost(args.ray_wait)
        elif args.read_cost is not None:
            groups = args.read_cost or [2000, 20_000, 100_000, 1 << 20]
            try:
                results = read_cost(work, args.chunk_size[0], groups, args.pairs or READ_COST_PAIRS)
            except ValueError as error:
                parser.error(str(error))
        else:
            results = []
            for workers in args.workers:
                for chunk_size in args.chunk_size:
                    results.append(simulate(work, workers, chunk_size, args.pairs or SIMULATED_PAIRS, args.rate,
                                            args.row_group_rows or chunk_size, args.window))
                    print(json.dumps(results[-1]), flush=True)
        if args.ray_wait or args.read_cost is not None:
            for row in results:
                print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
