"""The job spec: YAML in, a typed and validated JobSpec out, with `--set a.b=c` overrides and `${ENV}` values.

This is the only module that parses job YAML. Every knob of a job lives here, with its default.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from collections.abc import Mapping
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from batchrank.errors import SpecError

ModelKind = Literal["qwen3-yes-no", "cross-encoder", "embedding"]
ScoreChoice = Literal["probability", "logit"]
CANONICAL_COLUMNS = ("query_id", "query", "doc_id", "document")
# ${NAME}, ${NAME:-default} (default when NAME is unset or empty, as in the shell), ${NAME-default} (when unset).
_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class InputSpec(_Strict):
    path: str = Field(description="a Parquet file, a directory of Parquet files, or a glob")
    columns: dict[str, str] = Field(
        default_factory=dict, description="map from query_id, query, doc_id, document to the file's column names"
    )
    on_bad_rows: Literal["error", "skip"] = Field(
        default="error",
        description="error: a bad row stops the job; skip: bad rows go to OUTPUT/rejects.parquet with a reason",
    )

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, columns: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(columns) - set(CANONICAL_COLUMNS))
        if unknown:
            raise ValueError(f"unknown key(s) {unknown}; the keys are {list(CANONICAL_COLUMNS)}")
        return columns

    def column(self, canonical: str) -> str:
        """The file's column name for a canonical column (identity when not mapped)."""
        return self.columns.get(canonical, canonical)


class ModelSpec(_Strict):
    path: str = Field(description="a local model directory (no hub)")
    kind: ModelKind | None = Field(default=None, description="detected from the model's config.json when omitted")
    dtype: str = "auto"
    max_model_len: int | None = Field(default=None, gt=8)
    batch_invariant: bool = Field(
        default=False, description="vLLM's batch-invariant kernels (CUDA only): a pair's score no longer depends on "
        "which pairs share its batch, so a resumed or re-sharded run reproduces scores bit for bit; slower"
    )
    trust_remote_code: bool = False
    score: ScoreChoice | None = Field(
        default=None, description="probability (the default): qwen3-yes-no's P(yes), a cross-encoder's sigmoid; "
        "logit: the raw margin before that activation, which never saturates (qwen3-yes-no: the yes-no logit; "
        "cross-encoder: the classifier's logit), what distillation wants. Same ranks. An embedding model's score "
        "is its similarity either way")
    engine: dict[str, Any] = Field(default_factory=dict, description="passed through to vllm.LLM")


class PromptSpec(_Strict):
    template: str | None = Field(
        default=None, description="pair, qwen3, sep, sep-instruct, or a custom string; default follows model.kind "
        "(qwen3-yes-no: qwen3; cross-encoder: pair, the tokenizer's own pair encoding)"
    )
    instruction: str | None = Field(
        default=None, description="qwen3 / sep-instruct / custom templates: {instruction}; embedding: the query "
        "prompt 'Instruct: {instruction}\\nQuery:' (Qwen3-Embedding)"
    )
    query_prefix: str | None = Field(
        default=None, description="embedding kind: text before every query, e.g. 'query: ' (e5)"
    )
    document_prefix: str | None = Field(
        default=None, description="embedding kind: text before every document, e.g. 'passage: ' (e5)"
    )


class WorkerResources(_Strict):
    num_gpus: float = Field(default=1.0, ge=0)
    num_cpus: float = Field(default=1.0, ge=0)


class RunSpec(_Strict):
    executor: Literal["auto", "local", "ray"] = Field(
        default="auto", description="auto: ray on a Ray cluster or with several GPUs, else local"
    )
    chunk_size: int = Field(default=2000, gt=0, description="pairs per chunk (whole queries; see plan.py)")
    max_attempts: int = Field(default=2, gt=0, description="tries per chunk before the job stops")
    num_workers: int | Literal["auto"] = Field(
        default="auto", description="Ray actors; auto = GPUs / tensor_parallel_size (1 without GPUs)"
    )
    worker_resources: WorkerResources | None = Field(
        default=None, description="per actor; default: tensor_parallel_size GPUs, or 1 CPU without GPUs"
    )
    engines_per_gpu: int | Literal["auto"] = Field(
        default="auto", description="vLLM engines sharing each GPU, one Ray actor each: a small model leaves the "
        "GPU waiting on one engine's CPU work. auto: 2 for weights up to 4 GiB, else 1; always 1 without GPUs"
    )
    chunks_in_flight_per_worker: int = Field(
        default=2, gt=0, description="chunks each engine holds at once (local and Ray alike): while one finishes in "
        "the engine, the next is already queued in it and a third may be read and tokenized; 1 drains the engine at "
        "every chunk's end")
    staging_sort_mib: int = Field(
        default=1024, ge=16, description="memory for grouping a scattered input (or one with rejected rows) into "
        "its staged copy: an external sort that buckets the rows on local disk (TMPDIR), then sorts one bucket of "
        "about this size at a time; it bounds the plan's memory, not the staged copy's size")
    plan_read_mib: int = Field(
        default=256, ge=32, description="memory for reading the input while `validate` and the plan check every "
        "row and stage a grouped copy: batches of decoded rows (one row group's pages at a time, whatever the "
        "files' layout) and the work on them; with staging_sort_mib it bounds the plan's memory (README)")
    ray_address: str | None = Field(default=None, description="a Ray cluster; RAY_ADDRESS when unset")
    stall_timeout: float = Field(
        default=600.0, gt=0, description="seconds an engine may hold requests and finish none of them (or a Ray "
        "worker may not answer) before its chunks fail and the job stops (exit 1, rerun to resume): nothing waits "
        "for ever. A healthy engine finishes requests every few seconds; raise it only for very long prompts on a "
        "slow CPU")
    worker_start_timeout: float = Field(
        default=600.0, gt=0, description="Ray: seconds a job waits with no worker scoring (at the start, or after "
        "every worker was lost) for one to be placed and start its engine, before it stops naming the resources "
        "asked for and what the cluster has. Workers that can be placed start scoring at once; the others join "
        "when there is room")
    max_lost_workers: int | Literal["auto"] = Field(
        default="auto", description="Ray workers a job may lose (killed, preempted, node gone) before it stops: a "
        "lost worker's chunks go back to the queue without using up their attempts, and this bound ends a job whose "
        "workers die in a loop. auto: twice the workers, at least 3")

    @field_validator("max_lost_workers")
    @classmethod
    def _non_negative(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 0:
            raise ValueError("must be 0 or more, or auto")
        return value

    @model_validator(mode="before")
    @classmethod
    def _removed_settings(cls, values: Any) -> Any:
        if isinstance(values, dict) and "engine_batch_pairs" in values:
            raise ValueError("engine_batch_pairs was removed: the engine is now fed across chunk boundaries "
                             "without it (docs/perf-notes.md); delete the key")
        if isinstance(values, dict) and "prefetch_chunks" in values:
            raise ValueError("prefetch_chunks was removed: chunks_in_flight_per_worker says how many chunks each "
                             "engine holds, read and tokenized ahead, in both executors")
        return values

    @field_validator("num_workers", "engines_per_gpu")
    @classmethod
    def _positive_workers(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be at least 1, or auto")
        return value


class OutputSpec(_Strict):
    path: str
    keep_columns: list[str] = Field(default_factory=list)
    keep_staged_input: bool = Field(
        default=False, description="keep OUTPUT/staging/ (a copy of the input grouped by query) after the job ends")

    @field_validator("keep_columns")
    @classmethod
    def _not_reserved(cls, columns: list[str]) -> list[str]:
        reserved = sorted(set(columns) & {"query_id", "doc_id", "score", "rank", "input_row"})
        if reserved:
            raise ValueError(f"{reserved} are always in the output; list only extra input columns")
        return columns


class EvalSpec(_Strict):
    qrels: str | None = Field(
        default=None, description="TREC qrels (qid 0 docid grade) or Parquet (query_id, doc_id, relevance)"
    )


class JobSpec(_Strict):
    input: InputSpec
    model: ModelSpec
    prompt: PromptSpec = Field(default_factory=PromptSpec)
    run: RunSpec = Field(default_factory=RunSpec)
    output: OutputSpec
    eval: EvalSpec = Field(default_factory=EvalSpec)


def interpolate_env(value: Any, where: str = "") -> Any:
    """Replace ${NAME}, ${NAME:-default} and ${NAME-default} in every string of a parsed YAML tree, as the shell
    does (a scheduler passes unset options as empty variables: `:-` takes the default then)."""
    if isinstance(value, dict):
        return {key: interpolate_env(item, f"{where}.{key}".lstrip(".")) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate_env(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, operator, default = match.group(1), match.group(2), match.group(3)
        value = os.environ.get(name)
        if value is not None and not (operator == ":-" and value == ""):
            return value
        if operator is not None:
            return default
        raise SpecError(f"{where}: environment variable ${{{name}}} is not set")

    return _ENV_PATTERN.sub(replace, value)


def apply_override(tree: dict[str, Any], assignment: str) -> None:
    """Apply one `a.b.c=value` override; the value is parsed as YAML (so 3 is an int, [a, b] a list)."""
    if "=" not in assignment:
        raise SpecError(f"--set {assignment!r}: expected KEY=VALUE, e.g. run.chunk_size=500")
    dotted, raw = assignment.split("=", 1)
    keys = dotted.strip().split(".")
    if not all(keys):
        raise SpecError(f"--set {assignment!r}: empty key in {dotted!r}")
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise SpecError(f"--set {assignment!r}: {key} is not a section")
        node = child
    try:
        node[keys[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise SpecError(
            f"--set {assignment!r}: the value is not valid YAML ({error.__class__.__name__}); quote it, "
            f"e.g. {dotted}='...'"
        ) from None


def _known_keys(location: tuple[int | str, ...]) -> list[str]:
    """The keys the spec section holding `location` takes (none where it is not a section of ours)."""
    model: Any = JobSpec
    for part in location[:-1]:
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        candidates = (field.annotation, *get_args(field.annotation))  # WorkerResources | None: the class
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return []
    return list(model.model_fields)


def _unknown_key(location: tuple[int | str, ...]) -> str:
    close = difflib.get_close_matches(str(location[-1]), _known_keys(location), n=1)
    return f"unknown key; did you mean {close[0]}?" if close else "unknown key"


def _format_validation_error(source: str, error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = _unknown_key(item["loc"]) if item["type"] == "extra_forbidden" else item["msg"]
        problems.append(f"{field}: {message}")
    return f"{source}: invalid job spec: " + "; ".join(problems)


def parse_spec(tree: Any, source: str = "job spec", overrides: list[str] | tuple[str, ...] = ()) -> JobSpec:
    """Validate a parsed YAML tree (after env interpolation and overrides) into a JobSpec."""
    if not isinstance(tree, dict):
        raise SpecError(f"{source}: a job spec is a YAML mapping with input, model, prompt, run and output")
    for assignment in overrides:
        apply_override(tree, assignment)
    tree = interpolate_env(tree)
    try:
        return JobSpec.model_validate(tree)
    except ValidationError as error:
        raise SpecError(_format_validation_error(source, error)) from None


def load_spec(source: str | os.PathLike[str] | Mapping[str, Any],
              overrides: list[str] | tuple[str, ...] = ()) -> JobSpec:
    """A job spec from a YAML file (a local path or an s3:// / gs:// URI) or from a mapping built in Python (the
    same tree the YAML would give); `overrides` as `--set` takes them. YAML is read with safe_load: plain data only,
    no object construction tags. A mapping is copied, never changed."""
    if isinstance(source, Mapping):
        return parse_spec(copy.deepcopy(dict(source)), "job spec (a mapping)", overrides)
    if not isinstance(source, (str, os.PathLike)):
        raise SpecError(f"load_spec takes a path to a YAML job spec or a mapping, not {type(source).__name__}")
    from batchrank.storage import StoragePath, reaching  # storage loads pyarrow: only for a file

    try:
        path = StoragePath.of(source)
    except ValueError as error:
        raise SpecError(f"job spec {os.fspath(source)!r}: {error}") from None
    with reaching(path):  # a store's error names the URI and its likely cause
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            path.check_bucket()
            raise SpecError(f"{path}: job spec not found") from None
        except UnicodeDecodeError as error:
            raise SpecError(f"{path}: cannot read job spec: {error}") from None
        except OSError as error:
            if StoragePath.is_uri(str(path)):
                raise
            raise SpecError(f"{path}: cannot read job spec: {error}") from None
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SpecError(f"{path}: not valid YAML: {error}".replace("\n", " ")) from None
    return parse_spec(tree, str(path), overrides)
