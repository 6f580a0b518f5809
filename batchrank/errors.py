"""Errors that reach the user as one sentence, and the exit code each one maps to."""

from __future__ import annotations

# Ctrl-C or a scheduler's SIGTERM: the shell's 128 + SIGINT. A stopped run, not a failed one (it resumes).
INTERRUPTED_EXIT_CODE = 130
# Another run holds the output: sysexits.h's EX_TEMPFAIL ("try again later"), so a scheduler waits and retries the
# task instead of failing it as it would on 2 ("fix your spec").
IN_USE_EXIT_CODE = 75


class BatchrankError(Exception):
    """A problem the user can fix: a bad spec, bad input, a refused resume. The CLI exits 2."""

    exit_code = 2


class SpecError(BatchrankError):
    """The job spec is invalid; the message names the field."""


class InputDataError(BatchrankError):
    """The input Parquet is missing, unreadable or has bad rows; the message names file, column or row."""


class CheckpointError(BatchrankError):
    """The output directory holds another job's checkpoint, or is locked by a running job."""


class OutputInUse(CheckpointError):
    """Another run holds the output directory (its lock, or its lease in an object store); nothing was done. Wait
    for it and run again: the CLI exits 75."""

    exit_code = IN_USE_EXIT_CODE


class StorageError(BatchrankError):
    """An object store cannot be used: a missing bucket, no or wrong credentials, an unreachable endpoint. The
    message names the URI."""


class RunFailure(Exception):
    """The job failed while running (engine crash, write error). Finished parts are kept. The CLI exits 1.

    `rerun_helps` is False for a failure that a rerun as it is meets again (a cluster that cannot place a worker,
    workers that die in a loop, Ray refusing its settings): the CLI then says to fix the cause first."""

    exit_code = 1

    def __init__(self, message: str, rerun_helps: bool = True):
        super().__init__(message)
        self.rerun_helps = rerun_helps


class EngineStalled(RunFailure):
    """An engine held requests and finished none of them for run.stall_timeout. The job stops at once (the same
    prompts would stall again); finished parts are kept and a rerun resumes. The message names the chunks, their
    longest prompt and the engine settings that decide how prompts are scheduled."""
