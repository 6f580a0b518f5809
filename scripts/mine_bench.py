"""Mining at scale (issue 23): time and peak memory of `batchrank mine` (and `batchrank teacher`) on a synthetic
finished output of N pairs, with the texts joined back from its input by input_row (the output keeps none).

Made batch by batch, never held in memory: the input is scale_bench.py's grouped pairs (one file, --per-query
candidates a query, short texts); the output is written straight in the output layout, as
tests/output_fixtures.py writes one (parts of --chunk-size pairs with their footer stats, job.json with the input's
fingerprint, run.json, _SUCCESS): random scores (logits), ranks per query, input_row. Qrels: one positive per query
near the top of its ranking (rank 1 for half the queries, 2 for a quarter, ...), a second one right below it for
every tenth query. The commands run as subprocesses; the peak is the resident
set of the process tree, sampled every 50 ms (scale_bench.measure). Not a timed test.

usage (repo root):
  python scripts/mine_bench.py --pairs 100M --work /tmp/batchrank-mine [--per-query 1000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale_bench import SCHEMA, measure, pairs_table, parse_count  # noqa: E402

from batchrank.io.input import open_input  # noqa: E402
from batchrank.io.parts import ChunkStats, write_part  # noqa: E402
from batchrank.output.layout import OutputLayout  # noqa: E402
from batchrank.output.manifest import Manifest, write_manifest  # noqa: E402
from batchrank.plan import Chunk  # noqa: E402
from batchrank.spec import InputSpec  # noqa: E402

BLOCK_QUERIES = 1000  # queries generated at a time


def block_scores(first_query: int, queries: int, per_query: int, first_row: int, rng: np.random.Generator
                 ) -> tuple[pl.DataFrame, np.ndarray]:
    """query_id, doc_id (as pairs_table names them), a logit-like score, rank per query, input_row; and each
    query's candidates best first."""
    table = pairs_table(first_query + np.arange(queries * per_query) // per_query,
                        np.arange(queries * per_query) % per_query)
    scores = rng.normal(0.0, 4.0, size=(queries, per_query))
    ranks = np.empty_like(scores, dtype=np.int32)
    order = np.argsort(-scores, axis=1, kind="stable")
    np.put_along_axis(ranks, order, np.arange(1, per_query + 1, dtype=np.int32)[None, :].repeat(queries, 0), axis=1)
    frame = pl.from_arrow(table.select(["query_id", "doc_id"]))
    assert isinstance(frame, pl.DataFrame)
    rows = np.arange(first_row, first_row + table.num_rows, dtype=np.int64)
    return frame.with_columns(score=pl.Series(scores.ravel()), rank=pl.Series(ranks.ravel()),
                              input_row=pl.Series(rows)), order


def generate(work: Path, pairs: int, per_query: int, chunk_size: int, seed: int = 0) -> float:
    """Input, output and qrels under `work` (reused when complete); returns the seconds it took (0 when reused)."""
    done = work / "_COMPLETE"
    if done.exists() and done.read_text() == f"{pairs} {per_query} {chunk_size}":
        return 0.0
    shutil.rmtree(work, ignore_errors=True)
    (work / "input").mkdir(parents=True)
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    source = work / "input" / "pairs.parquet"
    writer = pq.ParquetWriter(source, SCHEMA, compression="zstd")
    layout = OutputLayout(work / "out")
    layout.scores.mkdir()
    queries, per_chunk = pairs // per_query, max(1, chunk_size // per_query)
    chunks, positives = [], []
    for block in range(0, queries, BLOCK_QUERIES):
        size = min(BLOCK_QUERIES, queries - block)
        rows = np.arange(size * per_query, dtype=np.int64)
        writer.write_table(pairs_table(block + rows // per_query, rows % per_query))
        scored, best_first = block_scores(block, size, per_query, block * per_query, rng)
        for first in range(0, size, per_chunk):
            part = scored.slice(first * per_query, min(per_chunk, size - first) * per_query)
            chunk = Chunk(len(chunks), block * per_query + first * per_query, part.height)
            stats = ChunkStats(chunk.chunk_id, part.height, 40 * part.height, 0, 1.0, time.time(), worker="worker-0")
            write_part(part, layout.part(chunk.chunk_id), stats)
            chunks.append(chunk)
        # As a good reranker leaves them: the positive near the top (rank 1 for half the queries, 2 for a
        # quarter, ...), every tenth query's second positive right below it.
        rank = np.minimum(rng.geometric(0.5, size=size), per_query - 1) - 1
        judged = best_first[np.arange(size), rank]
        positives.append(pl.DataFrame({"query": block + np.arange(size), "candidate": judged}))
        second = np.arange(0, size, 10)
        positives.append(pl.DataFrame({"query": block + second, "candidate": best_first[second, rank[second] + 1]}))
    writer.close()
    _write_qrels(pl.concat(positives), work / "qrels.txt")
    files = open_input(InputSpec(path=str(source)))
    fingerprint = {"input.files": [[str(f.path), f.size, f.footer_sha256] for f in files.files], "model.files": "x",
                   "output.input_row": True}
    write_manifest(layout, Manifest(fingerprint, chunks, pairs, None, queries=queries))
    spec = {"input": {"path": str(source), "columns": {}}, "model": {"path": "/models/x", "score": "logit"},
            "output": {"path": str(layout.root), "keep_columns": []}}
    run_info = {"spec": spec, "model": {"path": "/models/x", "kind": "qwen3-yes-no", "score": "logit"},
                "pairs": pairs, "chunks": len(chunks)}
    layout.run_info.write_text(json.dumps(run_info))
    layout.success.write_text("")
    done.write_text(f"{pairs} {per_query} {chunk_size}")
    return time.perf_counter() - started


def _write_qrels(positives: pl.DataFrame, path: Path) -> None:
    """TREC qrels of the positives; doc ids as scale_bench.pairs_table makes them."""
    query, candidate = positives["query"].to_numpy(), positives["candidate"].to_numpy()
    doc = (query * 7919 + candidate * 104729) % 10_000_000
    pl.DataFrame({"q": [f"q{q}" for q in query], "z": "0", "d": [f"p{d}" for d in doc], "g": "1"}).write_csv(
        path, separator=" ", include_header=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=parse_count, default=parse_count("100M"))
    parser.add_argument("--per-query", type=int, default=1000)
    parser.add_argument("--chunk-size", type=int, default=20_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/batchrank-mine"))
    parser.add_argument("--only", choices=["mine", "teacher"], default=None)
    args = parser.parse_args()
    generated = generate(args.work, args.pairs, args.per_query, args.chunk_size)
    print(json.dumps({"pairs": args.pairs, "generated_s": round(generated, 1),
                      "disk_gib": round(sum(p.stat().st_size for p in args.work.rglob("*") if p.is_file()) / 2**30,
                                        2)}), flush=True)
    out, qrels = str(args.work / "out"), str(args.work / "qrels.txt")
    commands: dict[str, list[str]] = {
        "mine": ["mine", out, "--qrels", qrels, "-o", str(args.work / "mined.parquet"), "--format", "n-tuple",
                 "--num-negatives", "5", "--relative-margin", "0.05", "--scores"],
        "teacher": ["teacher", out, "-o", str(args.work / "teacher.parquet"), "--top", "50"],
    }
    for name, command in commands.items():
        if args.only not in (None, name):
            continue
        result: dict[str, Any] = measure([sys.executable, "-m", "batchrank.cli", *command])
        print(json.dumps({"command": "batchrank " + " ".join(command), "seconds": round(result["seconds"], 1),
                          "cpu_s": round(result["cpu"], 1), "peak_gib": round(result["peak_gib"], 2),
                          "returncode": result["returncode"], "output": result["output"].strip()}), flush=True)


if __name__ == "__main__":
    main()
