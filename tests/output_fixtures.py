"""Fabricated job output directories (parts with footer stats, job.json, run.json, _SUCCESS): no engine needed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import polars as pl

from batchrank.io.parts import ChunkStats, rank_within_queries, write_part
from batchrank.output.layout import OutputLayout
from batchrank.output.manifest import Manifest, write_manifest
from batchrank.plan import Chunk
from batchrank.storage import StoragePath


def make_output(
    root: Path,
    rows: list[dict[str, Any]],
    queries_per_chunk: int = 1,
    input_path: str = "/nonexistent/candidates.parquet",
    input_files: list[list[Any]] | None = None,
) -> Path:
    """An output dir as `batchrank run` leaves it. rows: query_id, doc_id, score, plus kept columns (no rank)."""
    frame = rank_within_queries(pl.DataFrame(rows))
    keep = [c for c in frame.columns if c not in ("query_id", "doc_id", "score", "rank")]
    frame = frame.select("query_id", "doc_id", "score", "rank", *keep)
    queries = frame["query_id"].unique(maintain_order=True).to_list()
    (root / "scores").mkdir(parents=True)
    start, chunks, clock = 0, [], time.time() - 100
    for chunk_id, first in enumerate(range(0, len(queries), queries_per_chunk)):
        part = frame.filter(pl.col("query_id").is_in(queries[first : first + queries_per_chunk]))
        seconds = 2.0 + chunk_id % 3  # varying throughput, so the plot has a shape
        clock += seconds
        stats = ChunkStats(chunk_id, part.height, 40 * part.height, 0, seconds, clock, worker="worker-0")
        write_part(part, StoragePath.of(root / "scores" / f"part-{chunk_id:06d}.parquet"), stats)
        chunks.append(Chunk(chunk_id, start, part.height))
        start += part.height
    fingerprint = {"input.files": input_files or [], "model.files": "y"}
    write_manifest(OutputLayout(root), Manifest(fingerprint, chunks, frame.height, None, queries=len(queries)))
    spec = {
        "input": {"path": input_path, "columns": {}},
        "model": {"path": "/models/tiny", "kind": "cross-encoder", "dtype": "float32"},
        "run": {"chunk_size": 10},
        "output": {"path": str(root), "keep_columns": keep},
        "eval": {"qrels": None},
    }
    run_info = {"spec": spec, "model": {"path": "/models/tiny", "kind": "cross-encoder", "template": "sep"},
                "versions": {"python": "3.11"}, "chunks": len(chunks), "chunks_scored_this_run": len(chunks),
                "pairs": frame.height, "prompt_tokens": 40 * frame.height, "truncated_pairs": 0,
                "wall_seconds_this_run": 10.0, "pairs_per_second_this_run": 1.5, "finished_at": "2025-01-01T00:00:00"}
    (root / "run.json").write_text(json.dumps(run_info))
    (root / "_SUCCESS").write_text("")
    return root


def ranked(query_id: Any, docs: list[str], first_stage: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows of one query: `docs` best first (decreasing scores); first_stage: the same docs in first-stage order."""
    order = first_stage or docs
    return [
        {"query_id": query_id, "doc_id": doc, "score": 1.0 - 0.1 * i, "first_stage_rank": order.index(doc) + 1}
        for i, doc in enumerate(docs)
    ]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


DEMO = Path(__file__).resolve().parents[1] / "jobs" / "data" / "demo"


def demo_rows() -> list[dict[str, Any]]:
    """The demo's 96 (query_id, doc_id) candidates in input (first-stage) order, with first_stage_rank and a fixed
    score that puts most judged documents high: 0.3 per relevance grade plus a hash of the ids below 0.5."""
    import hashlib

    grades = {(q, d): int(g) for q, _, d, g in (line.split() for line in (DEMO / "qrels.txt").read_text().splitlines())}
    rows = pl.read_parquet(DEMO / "candidates.parquet").select("query_id", "doc_id", "first_stage_rank").to_dicts()
    for row in rows:
        noise = int.from_bytes(hashlib.sha256(f"{row['query_id']} {row['doc_id']}".encode()).digest()[:4], "big")
        row["score"] = 0.3 * grades.get((row["query_id"], row["doc_id"]), 0) + 0.5 * noise / 2**32
    return rows


def demo_qrels_lines() -> list[str]:
    return (DEMO / "qrels.txt").read_text().splitlines()


def demo_job(root: Path, qrels: Path | None) -> Path:
    """A job spec over the demo input (for the fake_engine fixture: the model path is never read), output in
    root/run-out with first_stage_rank kept, eval.qrels as given."""
    import yaml

    spec = {"input": {"path": str(DEMO / "candidates.parquet")}, "model": {"path": str(root / "model")},
            "run": {"chunk_size": 24}, "output": {"path": str(root / "run-out"), "keep_columns": ["first_stage_rank"]},
            "eval": {"qrels": None if qrels is None else str(qrels)}}
    job = root / "job.yaml"
    job.write_text(yaml.safe_dump(spec))
    return job
