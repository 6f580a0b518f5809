"""batchrank's own CPU work for one chunk, apart from any engine: tokenizing it (the prepare thread) and writing
its part (the engine's thread). Uses the bench's synthetic MS MARCO-shaped pairs and a locally trained tokenizer of
the 0.6B bench shape's size; prints medians of --repeats runs.

usage (repo root): python -m batchrank.bench.prepare_cost [--pairs 2000] [--repeats 11]
Set TOKENIZERS_PARALLELISM=false to see the single-threaded cost (scripts/gpu_runs.sh sets it).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from batchrank.bench.synthetic import synthetic_pairs
from batchrank.io.parts import ChunkStats, rank_within_queries, write_part
from batchrank.models.random_qwen3 import SHAPES, train_tokenizer
from batchrank.prompts import PromptEncoder, fast_token_ids, own_token_ids, parse_template
from batchrank.storage import StoragePath


def median_ms(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Each function's median time; the functions take turns, so that a noisy neighbour hits them alike."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for round_ in range(repeats + 1):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            if round_:  # the first round warms up
                times[name].append(time.perf_counter() - started)
    return {name: 1000 * statistics.median(values) for name, values in times.items()}


def main(argv: list[str]) -> None:
    """Time tokenizing and writing one chunk; print the medians."""
    parser = argparse.ArgumentParser(prog="python -m batchrank.bench.prepare_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000, help="pairs in the chunk (100 per query)")
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args(argv)
    rows = synthetic_pairs(max(1, -(-args.pairs // 100)), 100, seed=0)[: args.pairs]
    queries, documents = [r["query"] for r in rows], [r["document"] for r in rows]
    tokenizer = train_tokenizer(SHAPES["0.6b"].tokenizer_vocab)

    fast_ids = fast_token_ids(tokenizer)
    assert fast_ids is not None, "the backend's encode_batch_fast is not exact for this tokenizer"
    fast = PromptEncoder(tokenizer, parse_template("qwen3"), None, 2048, token_ids=fast_ids)
    own = PromptEncoder(tokenizer, parse_template("qwen3"), None, 2048, token_ids=own_token_ids(tokenizer))
    assert fast.encode(queries, documents).token_ids == own.encode(queries, documents).token_ids
    tokens = fast.encode(queries, documents).num_tokens / len(rows)

    frame = pl.DataFrame({"query_id": [r["query_id"] for r in rows], "doc_id": [r["doc_id"] for r in rows],
                          "score": np.random.default_rng(0).random(len(rows))})
    folder = Path(tempfile.mkdtemp())
    written = itertools.count()

    def write_one_part() -> None:
        k = next(written)
        ranked = rank_within_queries(frame).select("query_id", "doc_id", "score", "rank")
        stats = ChunkStats(k, len(rows), 0, 0, 1.0, time.time())
        write_part(ranked, StoragePath.of(folder / f"part-{k:06d}.parquet"), stats)

    parallel = os.environ.get("TOKENIZERS_PARALLELISM", "unset")
    print(f"{len(rows)} pairs, {tokens:.1f} prompt tokens a pair, TOKENIZERS_PARALLELISM={parallel}, median of {args.repeats}:")
    tokenize = median_ms({"own": lambda: own.encode(queries, documents),
                          "fast": lambda: fast.encode(queries, documents)}, args.repeats)
    print(f"  tokenize, the tokenizer's own call:     {tokenize['own']:7.1f} ms")
    print(f"  tokenize, backend encode_batch_fast:    {tokenize['fast']:7.1f} ms")
    write = median_ms({"write": write_one_part}, args.repeats)["write"]
    print(f"  write the part (rank, Parquet, fsync):  {write:7.1f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
