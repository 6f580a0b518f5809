"""What a job's parts depend on, as named values: a checkpoint is resumed only while every one is unchanged.

Each entry is something that changes which rows a part holds or what their scores are: the input files' content
(their size and Parquet footer, not their path or modification time, so a copied or touched file is the same
input), the model's files (by content, not by path), the settings of the model and the prompt, the chunk size
and the output's columns. Settings that only change how fast a job runs (executor, workers, engine batch sizes,
memory) are left out, so a resumed job may run on other hardware. A refused resume names each entry that changed,
with its old and new value.
"""

from __future__ import annotations

from typing import Any

from batchrank.errors import CheckpointError
from batchrank.io.input import InputFiles
from batchrank.redact import mask_secret_fields
from batchrank.scoring.base import ModelFacts
from batchrank.spec import CANONICAL_COLUMNS, JobSpec

# model.engine keys that change speed or memory, not scores (beyond float rounding, which resumes accept).
THROUGHPUT_ENGINE_KEYS = frozenset({
    "max_num_seqs", "max_num_batched_tokens", "gpu_memory_utilization", "kv_cache_memory_bytes",
    "enable_prefix_caching", "enforce_eager", "tensor_parallel_size", "pipeline_parallel_size", "swap_space",
    "block_size", "disable_log_stats", "enable_chunked_prefill", "compilation_config", "cpu_offload_gb",
    "max_seq_len_to_capture", "async_scheduling", "scheduling_policy", "seed",
})


def job_fingerprint(spec: JobSpec, files: InputFiles, model: ModelFacts) -> dict[str, Any]:
    engine = {key: value for key, value in sorted(spec.model.engine.items()) if key not in THROUGHPUT_ENGINE_KEYS}
    engine = mask_secret_fields(engine)  # job.json holds no credential, and a rotated one does not block a resume
    # Kept partition values are output columns that no file's content holds (a file moved to another date=...).
    partitions = {"input.partitions": [[str(f.path), [dict(f.partition).get(name) for name in files.partition_columns]]
                                       for f in files.files]} if files.partition_columns else {}
    return {
        "input.files": [[str(f.path), f.size, f.footer_sha256] for f in files.files],
        "input.columns": {c: spec.input.column(c) for c in CANONICAL_COLUMNS},
        "model.files": model.fingerprint,
        "model.kind": model.kind,
        "model.input_format": model.input_format,
        "model.dtype": spec.model.dtype,
        "model.max_model_len": model.max_model_len,
        "model.batch_invariant": spec.model.batch_invariant,
        "model.engine": engine,
        "run.chunk_size": spec.run.chunk_size,
        "output.keep_columns": list(spec.output.keep_columns),
        "output.input_row": True,  # parts carry input_row (a checkpoint without this entry: they don't)
        **partitions,
    }


def _comparable(key: str, value: Any) -> Any:
    if key in ("input.files", "input.partitions"):  # by content and order; the path may change (a copy)
        return [entry[1:] for entry in value or []]
    if key == "output.input_row":  # not a setting: the plan's own record; a resume keeps writing parts its way
        return None
    return value


def describe_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """One phrase per entry that differs, naming it with its old and new value."""
    changes = []
    for key in list(new) + [k for k in old if k not in new]:
        before, after = old.get(key), new.get(key)
        if _comparable(key, before) == _comparable(key, after):
            continue
        if key == "input.files":
            changes.append("input file(s) changed since the checkpoint: " + _describe_files(before or [], after or []))
        elif key == "input.partitions":
            changes.append("the input files' partition directories (kept columns) changed since the checkpoint: "
                           + _describe_partitions(before or [], after or []))
        elif key == "model.files":
            changes.append("the model's files changed since the checkpoint (weights, tokenizer or config)")
        else:
            changes.extend(f"{name} changed since the checkpoint: {was!r} -> {now!r}"
                           for name, was, now in _differing_fields(key, before, after))
    return changes


def _differing_fields(key: str, before: Any, after: Any) -> list[tuple[str, Any, Any]]:
    """(name, old, new) for each field that differs, descending into mappings: a changed instruction is named as
    model.input_format.instruction, not as the whole input format twice."""
    if not (isinstance(before, dict) and isinstance(after, dict)):
        return [(key, before, after)]
    found: list[tuple[str, Any, Any]] = []
    for field in list(after) + [f for f in before if f not in after]:
        if before.get(field) != after.get(field):
            found.extend(_differing_fields(f"{key}.{field}", before.get(field), after.get(field)))
    return found


def _describe_files(before: list[list[Any]], after: list[list[Any]]) -> str:
    if len(before) != len(after):
        return f"{len(before)} file(s) then, {len(after)} now ({', '.join(str(a[0]) for a in after[:3])})"
    for (_, old_size, old_footer), (new_path, new_size, new_footer) in zip(before, after, strict=True):
        if old_size != new_size:
            return f"{new_path} ({old_size} -> {new_size} bytes)"
        if old_footer != new_footer:
            return f"{new_path} (same size, another Parquet footer: its content was rewritten)"
    return "their order changed"


def _describe_partitions(before: list[list[Any]], after: list[list[Any]]) -> str:
    for (_, old), (path, new) in zip(before, after, strict=False):
        if old != new:
            return f"{path} ({old} -> {new})"
    return f"{len(before)} file(s) then, {len(after)} now"


def check_resumable(root: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    changes = describe_changes(old, new)
    if changes:
        raise CheckpointError(
            f"{root}: {'; '.join(changes)}; refusing to mix results. Rerun with --overwrite to start over, or "
            "choose another output.path"
        )
