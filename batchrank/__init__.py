"""batchrank: offline batch reranking of (query, document) pairs with vLLM, checkpointed to Parquet.

The Python API (what an Airflow or Dagster task calls):

    import batchrank
    spec = batchrank.load_spec("jobs/msmarco.yaml", overrides=["run.chunk_size=5000"])  # or a dict
    result = batchrank.run_job(spec)          # a JobResult: output path, pairs, run.json, evaluation
    result.output, result.total_pairs, result.evaluation

Errors are typed: BatchrankError (SpecError, InputDataError, CheckpointError, StorageError) for what the user must
fix, with nothing scored, except OutputInUse (a CheckpointError: another run holds the output; wait and run again);
RunFailure for a failure while running (run it again: it resumes). Their messages are the ones the CLI prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batchrank.errors import (
    BatchrankError,
    CheckpointError,
    InputDataError,
    OutputInUse,
    RunFailure,
    SpecError,
    StorageError,
)

if TYPE_CHECKING:
    from batchrank.job import JobResult, run_job
    from batchrank.spec import JobSpec, load_spec, parse_spec

__version__ = "0.1.0"
__all__ = ["BatchrankError", "CheckpointError", "InputDataError", "JobResult", "JobSpec", "OutputInUse", "RunFailure",
           "SpecError", "StorageError", "load_spec", "parse_spec", "run_job"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `import batchrank` stays light (no polars, no vLLM) for a scheduler's process. What the
    # libraries set in the environment as they are imported (polars' allocator settings) is given back.
    if name in ("run_job", "JobResult"):
        from batchrank.environment import scoped_environment

        with scoped_environment():
            from batchrank import job

        return getattr(job, name)
    if name in ("load_spec", "parse_spec", "JobSpec"):
        from batchrank import spec

        return getattr(spec, name)
    raise AttributeError(f"module 'batchrank' has no attribute {name!r}")
