"""A job's plan: made once (check every row in streaming passes, stage a grouped copy if needed, cut chunks, write
job.json), then resumed by every later run of the same job. The checks and the staging work in a scratch directory
under TMPDIR, removed when the plan is written."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from batchrank.errors import CheckpointError, RunFailure
from batchrank.io.input import InputFiles
from batchrank.io.rejects import check_plan_rejects
from batchrank.output.checkpoint import clear
from batchrank.output.layout import OutputLayout
from batchrank.output.manifest import Manifest, read_manifest, write_manifest
from batchrank.plan import cut_chunks
from batchrank.planning.fingerprint import check_resumable
from batchrank.planning.memory import PlanMemory
from batchrank.planning.preflight import Checked
from batchrank.planning.spill import scratch_directory
from batchrank.planning.staging import stage_grouped_copy
from batchrank.planning.validate import RowCheck, check_rows, raise_if_nothing_left, raise_on_problems
from batchrank.scoring.base import ScorerFactory

log = logging.getLogger("batchrank")


def resume(checked: Checked, layout: OutputLayout, fingerprint: dict[str, Any]) -> Manifest | None:
    """The checkpoint's plan when the output holds one this job may continue; None when there is none. Refuses
    (CheckpointError, naming what changed) a checkpoint whose parts this job would not write the same way."""
    manifest = read_manifest(layout)
    if manifest is None:
        return None
    check_resumable(str(layout.root), manifest.fingerprint, fingerprint)
    on_bad_rows = checked.spec.input.on_bad_rows
    if manifest.rejected_rows and on_bad_rows == "error":
        raise CheckpointError(
            f"{layout.root}: input.on_bad_rows changed since the checkpoint: 'skip' -> 'error', and the checkpoint "
            f"skipped {manifest.rejected_rows} bad row(s) ({layout.plan_rejects}); set it back to skip to finish "
            "this job, or rerun with --overwrite to start over"
        )
    if manifest.rejected_rows:
        check_plan_rejects(layout.plan_rejects, manifest.rejected_rows)
    return manifest


def make_plan(checked: Checked, layout: OutputLayout, fingerprint: dict[str, Any],
              factory: ScorerFactory | None = None) -> Manifest:
    """Check every row, then (and only then) write the plan into a cleared output directory.

    With `factory`, rows whose query and instruction alone cannot fit max_model_len are bad rows found here, before
    anything is written (the prepare stage's check stays as the safety net)."""
    spec, files = checked.spec, checked.files
    too_long = None if factory is None else partial(factory.too_long_queries, spec, checked.model)
    memory = PlanMemory.of(spec.run)
    with scratch_directory() as scratch:
        check = check_rows(files, spec.input.on_bad_rows, scratch, too_long, memory=memory)
        for warning in check.report.warnings:  # before scoring, not when the export meets them
            log.warning("%s", warning)
        if spec.input.on_bad_rows == "error":  # bad rows stop the job before the output is touched
            raise_on_problems(check.report)
        raise_if_nothing_left(check, spec.input.path)
        queries = check.queries  # the input less the rejects (read before anything is written)
        clear(layout)
        if check.rejects is not None:
            _write_plan_rejects(check, files, layout)
        staged = None
        if not check.contiguous:
            staged = _stage(check, queries, files, layout, scratch, memory)
    sizes = queries["rows"].to_list()
    chunks = cut_chunks(sizes, spec.run.chunk_size)
    manifest = Manifest(fingerprint, chunks, sum(sizes), staged, check.rejected_rows, spec.input.on_bad_rows,
                        queries.height)
    write_manifest(layout, manifest)
    return manifest


def _write_plan_rejects(check: RowCheck, files: InputFiles, layout: OutputLayout) -> None:
    assert check.rejects is not None
    layout.rejects_dir.mkdir()
    try:
        with layout.plan_rejects.local_staging_file() as local:
            check.rejects.write(files, local)
    except OSError as error:
        raise RunFailure(f"{layout.plan_rejects}: cannot write the rejected rows: {error}") from error
    log.warning("input.on_bad_rows is skip: %d bad row(s) will not be scored (%s); they go to %s",
                check.rejected_rows, check.summarize_rejects(), layout.rejects)


def _stage(check: RowCheck, queries: pl.DataFrame, files: InputFiles, layout: OutputLayout, scratch: Path,
           memory: PlanMemory) -> str:
    excluded = check.rejects.rows() if check.rejects is not None else None
    try:
        staged = stage_grouped_copy(files, layout.staged_input, queries, excluded, scratch, memory)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise RunFailure(f"{layout.staged_input}: cannot write the staged input: {error}") from error
    sliced = f", {staged.sliced} over run.staging_sort_mib sorted in slices" if staged.sliced else ""
    log.info("staged the rows to score, grouped by query, at %s (%d sorted bucket(s)%s)", layout.staged_input,
             staged.buckets, sliced)
    return str(layout.staged_input.absolute())
