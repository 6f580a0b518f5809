"""The Ray executor's dispatch at cluster scale, simulated: real actors, real reads and part writes, a scorer of
fixed speed in place of the engine.

Each configuration is one `batchrank run` (run_job) with run.executor ray and N CPU actors ({num_cpus: 0.1}) whose
scorer sleeps pairs / RATE seconds a chunk, so a worker scores at most RATE pairs/s and the job at most N x RATE.
What the driver does per chunk (ray.wait, the result, the ledger, progress, handing out the next chunk) is timed by
execute.base.DispatchTiming and read back from run.json. Also printed: parts written per second and the input read
amplification (rows of the row groups a chunk's read touches, over the chunk's rows: what RowRangeReader decodes).

usage (repo root): python scripts/dispatch_sim.py [--workers 8 16] [--chunk-size 500 2000] [--chunks 400]
                   [--rate 4000] [--row-group-rows 20000] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from batchrank.job import run_job
from batchrank.output.layout import OutputLayout
from batchrank.output.manifest import read_manifest
from batchrank.scoring.base import ChunkAtATimeScorer, EnginePlacement, ModelFacts, PreparedChunk
from batchrank.spec import JobSpec, parse_spec

DOCS_PER_QUERY = 100


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


def read_amplification(input_path: Path, output: Path) -> float:
    """Rows decoded per row wanted: a chunk's read touches every row group that overlaps its rows."""
    groups = [pq.ParquetFile(input_path).metadata.row_group(i).num_rows
              for i in range(pq.ParquetFile(input_path).metadata.num_row_groups)]
    bounds = np.cumsum([0, *groups])
    chunks = read_manifest(OutputLayout(output)).chunks
    decoded = 0
    for chunk in chunks:
        first = np.searchsorted(bounds, chunk.start, side="right") - 1
        last = np.searchsorted(bounds, chunk.start + chunk.num_rows - 1, side="right") - 1
        decoded += int(bounds[last + 1] - bounds[first])
    return decoded / sum(c.num_rows for c in chunks)


def simulate(work: Path, workers: int, chunk_size: int, chunks: int, rate: float, row_group_rows: int,
             window: int) -> dict[str, Any]:
    input_path = work / f"input-{chunk_size * chunks}-{row_group_rows}.parquet"
    if not input_path.exists():
        write_input(input_path, chunk_size * chunks, row_group_rows)
    output = work / f"out-{workers}w-{chunk_size}c"
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
        "read_amplification": round(read_amplification(input_path, output), 2),
        "job_seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--chunk-size", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--chunks", type=int, default=400, help="chunks per run")
    parser.add_argument("--rate", type=float, default=4000.0, help="pairs/s of each worker's scorer")
    parser.add_argument("--row-group-rows", type=int, default=20_000, help="row group size of the input")
    parser.add_argument("--window", type=int, default=2, help="run.chunks_in_flight_per_worker")
    parser.add_argument("--work", help="directory for the input and outputs (default: a temporary one)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="dispatch-sim-") as scratch:
        work = Path(args.work or scratch)
        work.mkdir(parents=True, exist_ok=True)
        results = []
        for workers in args.workers:
            for chunk_size in args.chunk_size:
                results.append(simulate(work, workers, chunk_size, args.chunks, args.rate, args.row_group_rows,
                                        args.window))
                print(json.dumps(results[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
