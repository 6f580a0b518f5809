"""One job end to end (run.py): the checks and the plan or its resume (batchrank.planning), scoring through an
executor, and the end of the job (finish.py)."""

from batchrank.job.run import JobResult, count_gpus, run_job

__all__ = ["JobResult", "count_gpus", "run_job"]
