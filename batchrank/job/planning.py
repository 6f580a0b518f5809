"""A job's plan: made once (check every row, stage a grouped copy if needed, cut chunks, write job.json), then
resumed by every later run of the same job."""

from __future__ import annotations

import logging
from typing import Any

import polars as pl

from batchrank.errors import CheckpointError, RunFailure
from batchrank.fingerprint import check_resumable
from batchrank.io.rejects import check_plan_rejects, summarize_reasons, write_rejects
from batchrank.io.validate import check_rows, raise_if_nothing_left, raise_on_problems
from batchrank.job.preflight import Checked
from batchrank.output.checkpoint import clear
from batchrank.output.layout import OutputLayout
from batchrank.output.manifest import Manifest, read_manifest, write_manifest
from batchrank.plan import cut_chunks
from batchrank.staging import stage_grouped_copy

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


def make_plan(checked: Checked, layout: OutputLayout, fingerprint: dict[str, Any]) -> Manifest:
    """Check every row, then (and only then) write the plan into a cleared output directory."""
    spec, files = checked.spec, checked.files
    check = check_rows(files, spec.input.on_bad_rows)  # bad rows stop the job before the output is touched
    if spec.input.on_bad_rows == "error":
        raise_on_problems(check.report)
    raise_if_nothing_left(check, spec.input.path)
    clear(layout)
    if check.rejected is not None:
        layout.rejects_dir.mkdir()
        write_rejects(check.rejected, layout.plan_rejects)
        log.warning("input.on_bad_rows is skip: %d bad row(s) will not be scored (%s); they go to %s",
                    check.rejected.height, summarize_reasons(check.rejected["reason"]), layout.rejects)
    staged = None
    if not check.contiguous:
        try:
            stage_grouped_copy(files.scan(), layout.staged_input, check.rejected_input_rows)
        except (OSError, pl.exceptions.PolarsError) as error:
            raise RunFailure(f"{layout.staged_input}: cannot write the staged input: {error}") from error
        log.info("staged the rows to score, grouped by query, at %s", layout.staged_input)
        staged = str(layout.staged_input.absolute())
    chunks = cut_chunks(check.query_sizes, spec.run.chunk_size)
    manifest = Manifest(fingerprint, chunks, sum(check.query_sizes), staged, check.rejected_rows,
                        spec.input.on_bad_rows, len(check.query_sizes))
    write_manifest(layout, manifest)
    return manifest
